using LongCtx.Backends;

namespace LongCtx.Model;

/// <summary>
/// Named shapes of well-known models, for benchmarks and demos with dummy weights (no download needed). The
/// numbers are those of the published config.json files (Llama 3.1 8B/70B/405B, Qwen2.5 7B, Qwen3 8B, Mistral 7B v0.1,
/// Gemma 2 9B, the text model of Gemma 3 12B and 27B).
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
        ["qwen3-8b"] = () => new ModelConfig
        {
            ModelType = "qwen3", HiddenSize = 4096, IntermediateSize = 12288, NumLayers = 36, NumHeads = 32, NumKvHeads = 8,
            HeadDim = 128, VocabSize = 151936, RmsNormEps = 1e-6, MaxPositionEmbeddings = 40960, QkNorm = true,
            BosTokenId = 151643, EosTokenIds = [151645], Rope = RopeConfig.Default(1000000), Source = "preset qwen3-8b",
        },
        // Every layer within the last 4096 keys.
        ["mistral-7b"] = () => new ModelConfig
        {
            ModelType = "mistral", HiddenSize = 4096, IntermediateSize = 14336, NumLayers = 32, NumHeads = 32, NumKvHeads = 8,
            HeadDim = 128, VocabSize = 32000, RmsNormEps = 1e-5, MaxPositionEmbeddings = 32768, SlidingWindow = 4096,
            SlidingLayers = Enumerable.Repeat(true, 32).ToArray(), BosTokenId = 1, EosTokenIds = [2], Rope = RopeConfig.Default(10000),
            Source = "preset mistral-7b",
        },
        ["gemma2-9b"] = () =>
        {
            var config = Gemma("gemma2-9b", "gemma2", hidden: 3584, inter: 14336, layers: 42, heads: 16, vocab: 256000, maxPositions: 8192,
                window: 4096, pattern: 2, RopeConfig.Default(10000), null);
            return config with { AttnLogitSoftcap = 50, FinalLogitSoftcap = 30, EosTokenIds = [1, 107] };
        },
        // W = 1024, five local layers to one global; the global layers' RoPE base 1e6 with linear scaling 8.
        ["gemma3-12b"] = () => Gemma("gemma3-12b", "gemma3_text", hidden: 3840, inter: 15360, layers: 48, heads: 16, vocab: 262208,
            maxPositions: 131072, window: 1024, pattern: 6, new RopeConfig { RopeType = "linear", Theta = 1000000, Factor = 8 }, RopeConfig.Default(10000)),
        ["gemma3-27b"] = () =>
        {
            var config = Gemma("gemma3-27b", "gemma3_text", hidden: 5376, inter: 21504, layers: 62, heads: 32, vocab: 262208,
                maxPositions: 131072, window: 1024, pattern: 6, new RopeConfig { RopeType = "linear", Theta = 1000000, Factor = 8 }, RopeConfig.Default(10000));
            return config with { NumKvHeads = 16, HeadDim = 128, QueryPreAttnScalar = 168 };
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

    /// <summary>A Gemma 2 or Gemma 3 text model: half as many KV heads as query heads, of head dim 256; layer i slides unless (i + 1) is a multiple of the pattern.</summary>
    private static ModelConfig Gemma(string name, string type, int hidden, int inter, int layers, int heads, int vocab, int maxPositions, int window,
        int pattern, RopeConfig rope, RopeConfig? slidingRope) => new()
        {
            ModelType = type, HiddenSize = hidden, IntermediateSize = inter, NumLayers = layers, NumHeads = heads, NumKvHeads = heads / 2,
            HeadDim = 256, VocabSize = vocab, RmsNormEps = 1e-6, MaxPositionEmbeddings = maxPositions, TieWordEmbeddings = true,
            SlidingWindow = window, SlidingLayers = Enumerable.Range(0, layers).Select(i => (i + 1) % pattern != 0).ToArray(),
            Rope = rope, SlidingRope = slidingRope, QkNorm = type == "gemma3_text", NormWeightOffset = 1, SandwichNorms = true,
            HiddenActivation = Activation.GeluTanh, ScaleEmbedding = true, QueryPreAttnScalar = 256,
            BosTokenId = 2, EosTokenIds = [1, 106], Source = $"preset {name}",
        };

    private static ModelConfig Llama3(string name, int hidden, int inter, int layers, int heads, int kvHeads = 8, bool tied = false) => new()
    {
        ModelType = "llama", HiddenSize = hidden, IntermediateSize = inter, NumLayers = layers, NumHeads = heads, NumKvHeads = kvHeads,
        HeadDim = hidden / heads, VocabSize = 128256, RmsNormEps = 1e-5, MaxPositionEmbeddings = 131072, TieWordEmbeddings = tied,
        BosTokenId = 128000, EosTokenIds = [128001, 128008, 128009], Rope = Llama31Rope, Source = $"preset {name}",
    };
}
