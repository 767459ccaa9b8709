namespace LongCtx.Model;

/// <summary>
/// Named shapes of well-known models, for benchmarks and demos with dummy weights (no download needed). The
/// numbers are those of the published config.json files (Llama 3.1 8B/70B/405B, Qwen2.5 7B).
/// </summary>
public sealed partial record ModelConfig
{
    private static readonly RopeConfig Llama31Rope = RopeConfig.Llama3(500000, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192);

    private static readonly Dictionary<string, Func<ModelConfig>> Presets = new(StringComparer.OrdinalIgnoreCase)
    {
        ["llama3-8b"] = () => Llama3("llama3-8b", hidden: 4096, inter: 14336, layers: 32, heads: 32),
        // Llama 3 8B with a 1M-token window (the shape of gradientai/Llama-3-8B-Instruct-Gradient-1048k: plain RoPE, base ~3.6e9),
        // for the million-token prefill benchmark.
        ["llama3-8b-1m"] = () => Llama3("llama3-8b-1m", hidden: 4096, inter: 14336, layers: 32, heads: 32) with
        {
            MaxPositionEmbeddings = 1 << 20,
            Rope = RopeConfig.Default(3580165449),
            EosTokenIds = [128001, 128009],
        },
        ["llama3-70b"] = () => Llama3("llama3-70b", hidden: 8192, inter: 28672, layers: 80, heads: 64),
        ["llama3-405b"] = () => Llama3("llama3-405b", hidden: 16384, inter: 53248, layers: 126, heads: 128),
        ["qwen2.5-7b"] = () => new ModelConfig
        {
            ModelType = "qwen2", HiddenSize = 3584, IntermediateSize = 18944, NumLayers = 28, NumHeads = 28, NumKvHeads = 4,
            HeadDim = 128, VocabSize = 152064, RmsNormEps = 1e-6, MaxPositionEmbeddings = 32768, TieWordEmbeddings = false,
            AttentionBias = true, BosTokenId = 151643, EosTokenIds = [151645, 151643], Rope = RopeConfig.Default(1000000),
            Source = "preset qwen2.5-7b",
        },
        // A Llama-3-shaped toy: the real tokenizer's vocabulary, so demos can tokenize real text.
        ["tiny"] = () => Llama3("tiny", hidden: 256, inter: 768, layers: 4, heads: 8, kvHeads: 2, tied: true),
    };

    /// <summary>Names <see cref="Preset"/> accepts.</summary>
    public static IReadOnlyCollection<string> PresetNames => Presets.Keys;

    /// <summary>A named model shape; unknown names throw a LongCtxException listing the known ones.</summary>
    public static ModelConfig Preset(string name) =>
        Presets.TryGetValue(name, out var make)
            ? make()
            : throw new LongCtxException($"unknown model preset '{name}' (known: {string.Join(", ", Presets.Keys)})");

    private static ModelConfig Llama3(string name, int hidden, int inter, int layers, int heads, int kvHeads = 8, bool tied = false) => new()
    {
        ModelType = "llama", HiddenSize = hidden, IntermediateSize = inter, NumLayers = layers, NumHeads = heads, NumKvHeads = kvHeads,
        HeadDim = hidden / heads, VocabSize = 128256, RmsNormEps = 1e-5, MaxPositionEmbeddings = 131072, TieWordEmbeddings = tied,
        BosTokenId = 128000, EosTokenIds = [128001, 128008, 128009], Rope = Llama31Rope, Source = $"preset {name}",
    };
}
