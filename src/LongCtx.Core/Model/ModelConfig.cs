namespace LongCtx.Model;

/// <summary>
/// The shape of a Llama-style decoder (Llama 2/3.x, Mistral, Qwen2/2.5) as config.json describes it. Built by
/// <see cref="Load"/> from a Hugging Face model directory, by <see cref="FromJson"/> from text, or by
/// <see cref="Preset"/> for benchmarks with dummy weights.
/// </summary>
public sealed partial record ModelConfig
{
    /// <summary>model_type values this engine runs; all share one decoder block (RMSNorm, GQA, RoPE, SwiGLU).</summary>
    public static readonly IReadOnlyList<string> SupportedModelTypes = ["llama", "mistral", "qwen2"];

    /// <summary>"llama", "mistral" or "qwen2".</summary>
    public required string ModelType { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public required int NumKvHeads { get; init; }
    public required int HeadDim { get; init; }
    public required int VocabSize { get; init; }
    public required double RmsNormEps { get; init; }
    public required int MaxPositionEmbeddings { get; init; }
    /// <summary>When true the checkpoint has no lm_head.weight and the embedding doubles as the output projection.</summary>
    public bool TieWordEmbeddings { get; init; }
    /// <summary>q/k/v projections carry biases (always for Qwen2; Llama's <c>attention_bias</c>).</summary>
    public bool AttentionBias { get; init; }
    /// <summary>Always false: config.json with <c>mlp_bias: true</c> is refused at load.</summary>
    public bool MlpBias { get; init; }
    public int? BosTokenId { get; init; }
    /// <summary>Tokens that end generation; empty when config.json names none.</summary>
    public int[] EosTokenIds { get; init; } = [];
    /// <summary>
    /// The sliding attention window when it actually limits attention (set, smaller than
    /// MaxPositionEmbeddings, and not switched off by <c>use_sliding_window: false</c>); otherwise null.
    /// The engine does not implement windowed attention, so it refuses prompts longer than this.
    /// </summary>
    public int? SlidingWindow { get; init; }
    public required RopeConfig Rope { get; init; }
    /// <summary>The FP8 scheme of config.json's quantization_config, or of <c>--quantization fp8</c>; null for a float checkpoint.</summary>
    public QuantizationConfig? Quantization { get; init; }
    /// <summary>Where this config came from (a config.json path or a preset name), for error messages.</summary>
    public string Source { get; init; } = "config.json";

    public int QDim => NumHeads * HeadDim;
    public int KvDim => NumKvHeads * HeadDim;

    /// <summary>
    /// o_proj has a bias: Llama's attention_bias covers q, k, v and o; Qwen2's biases are on q, k, v only.
    /// </summary>
    public bool OProjBias => AttentionBias && ModelType != "qwen2";

    /// <summary>Number of weights, counting a tied embedding once.</summary>
    public long ParameterCount
    {
        get
        {
            long h = HiddenSize, q = QDim, kv = KvDim, inter = IntermediateSize;
            long attention = h * q + 2 * h * kv + q * h;
            if (AttentionBias) attention += q + 2 * kv + (OProjBias ? h : 0);
            long perLayer = attention + 3 * h * inter + 2 * h;
            long embedding = (long)VocabSize * h;
            return embedding + NumLayers * perLayer + h + (TieWordEmbeddings ? 0 : embedding);
        }
    }

    /// <summary>Reads <c>config.json</c> from a Hugging Face model directory.</summary>
    public static ModelConfig Load(string modelDir)
    {
        if (!Directory.Exists(modelDir))
        {
            if (File.Exists(modelDir))
                throw new LongCtxException($"{modelDir} is a file: pass the model directory that holds config.json and the safetensors files");
            throw new LongCtxException($"model directory {modelDir} does not exist: pass a Hugging Face model directory (config.json + model.safetensors)");
        }
        string path = Path.Combine(modelDir, "config.json");
        if (!File.Exists(path))
            throw new LongCtxException($"{modelDir}: no config.json here; pass a Hugging Face model directory (config.json + model.safetensors)");
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LongCtxException($"{path}: cannot read ({e.Message})", e);
        }
        return FromJson(text, path);
    }

    /// <summary>Parses config.json text; <paramref name="sourceName"/> prefixes every error message.</summary>
    public static ModelConfig FromJson(string json, string sourceName) => ModelConfigParser.Parse(json, sourceName);

    public override string ToString() =>
        $"{ModelType}: {NumLayers} layers, hidden {HiddenSize}, {NumHeads} heads ({NumKvHeads} kv) x {HeadDim}, " +
        $"mlp {IntermediateSize}, vocab {VocabSize}, rope {Rope.RopeType} theta {Rope.Theta}, {ParameterCount / 1e9:0.###}B params";
}
