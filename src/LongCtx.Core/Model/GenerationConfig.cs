namespace LongCtx.Model;

/// <summary>
/// A model directory's generation_config.json: the end-of-sequence ids generation stops at and the sampling
/// defaults the model ships with. As vLLM does by default, they apply wherever a request or flag leaves a value
/// unset; a model without the file (or without a field) keeps the engine's own defaults.
/// </summary>
public sealed record GenerationConfig(int[] EosTokenIds, float? Temperature, float? TopP, int? TopK)
{
    /// <summary>The repetition penalty the model ships with (the server's requests that name none take it, as vLLM's do); null: none.</summary>
    public float? RepetitionPenalty { get; init; }

    public const string FileName = "generation_config.json";

    public static readonly GenerationConfig None = new([], null, null, null);

    /// <summary>Reads DIR/generation_config.json (None when there is no such file); ids must be inside the vocabulary.</summary>
    public static GenerationConfig Load(string? modelDir, int vocabSize)
    {
        if (modelDir is null) return None;
        string path = Path.Combine(modelDir, FileName);
        if (!File.Exists(path)) return None;
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LongCtxException($"{path}: cannot read ({e.Message})", e);
        }
        using var doc = ConfigJson.ParseDocument(text, path);
        var c = new ConfigJson(doc.RootElement, path);
        int[] eos = c.IntOrIntList("eos_token_id");
        foreach (int id in eos)
            if (id < 0 || id >= vocabSize)
                throw c.Error($"eos_token_id {id} is outside the vocabulary (0 to {vocabSize - 1}): fix the file or remove the id");
        double? temperature = c.OptionalDouble("temperature"), topP = c.OptionalDouble("top_p");
        int? topK = c.OptionalInt("top_k");
        if (temperature is < 0) throw c.Error($"temperature {temperature} must be 0 or more");
        if (topP is not null and (<= 0 or > 1)) throw c.Error($"top_p {topP} must be in (0, 1]");
        if (topK is < 0) throw c.Error($"top_k {topK} must be 0 (off) or more");
        double? repetition = c.OptionalDouble("repetition_penalty");
        if (repetition is not null and not > 0) throw c.Error($"repetition_penalty {repetition} must be positive (1: off)");
        return new GenerationConfig(eos, (float?)temperature, (float?)topP, topK) { RepetitionPenalty = (float?)repetition };
    }

    /// <summary>Sampling for a request: each value given wins, else the file's, else the engine's default (greedy, top-p 1, top-k off).</summary>
    public Sampling.SamplingOptions Sampling(float? temperature, float? topP, int? topK, int? seed) =>
        new(temperature ?? Temperature ?? 0f, topP ?? TopP ?? 1f, topK ?? TopK ?? 0, seed);

    /// <summary>The ids that end generation: config.json's eos_token_id and this file's, together.</summary>
    public int[] StopTokens(ModelConfig config) => config.EosTokenIds.Concat(EosTokenIds).Distinct().ToArray();
}
