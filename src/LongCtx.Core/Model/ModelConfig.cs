using LongCtx.Backends;

namespace LongCtx.Model;

/// <summary>
/// The shape of a decoder as config.json describes it: Llama 2/3.x, Mistral, Qwen2/2.5, Qwen3, Gemma 2 and Gemma 3
/// (text), which share one block (RMSNorm, GQA, RoPE, gated MLP) and differ in the traits below. Built by
/// <see cref="Load"/> from a Hugging Face model directory, by <see cref="FromJson"/> from text, or by
/// <see cref="Preset"/> for benchmarks with dummy weights.
/// </summary>
public sealed partial record ModelConfig
{
    /// <summary>model_type values this engine runs.</summary>
    public static readonly IReadOnlyList<string> SupportedModelTypes = ["llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3_text"];

    /// <summary>One of <see cref="SupportedModelTypes"/>.</summary>
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
    /// W of the sliding-window layers (a query sees the last W keys, itself included), when some layer has one that
    /// limits attention (set, and smaller than MaxPositionEmbeddings); otherwise null.
    /// </summary>
    public int? SlidingWindow { get; init; }
    /// <summary>Per layer, whether it attends within <see cref="SlidingWindow"/> (transformers' layer_types); empty: no layer does.</summary>
    public IReadOnlyList<bool> SlidingLayers { get; init; } = [];
    /// <summary>RoPE of the full-attention layers (of every layer, unless <see cref="SlidingRope"/> is set).</summary>
    public required RopeConfig Rope { get; init; }
    /// <summary>RoPE of the sliding-window layers where it differs from <see cref="Rope"/> (Gemma 3's local base frequency).</summary>
    public RopeConfig? SlidingRope { get; init; }
    /// <summary>q and k get an RMSNorm over each head's dimensions after the projection, before RoPE (Qwen3, Gemma 3).</summary>
    public bool QkNorm { get; init; }
    /// <summary>Every RMSNorm multiplies by (NormWeightOffset + w): 1 for Gemma, whose checkpoints store w as an offset from 1.</summary>
    public float NormWeightOffset { get; init; }
    /// <summary>
    /// Gemma's four norms a layer: the attention and MLP outputs are normed (post_attention_layernorm,
    /// post_feedforward_layernorm) before the residual add, and the MLP input by pre_feedforward_layernorm.
    /// </summary>
    public bool SandwichNorms { get; init; }
    public Activation HiddenActivation { get; init; } = Activation.Silu;
    /// <summary>Embeddings are multiplied by √hidden (Gemma).</summary>
    public bool ScaleEmbedding { get; init; }
    /// <summary>Attention products are scaled by QueryPreAttnScalar^−½ instead of HeadDim^−½ (Gemma).</summary>
    public double? QueryPreAttnScalar { get; init; }
    /// <summary>Attention products are soft-capped, cap·tanh(s / cap), after scaling (Gemma 2).</summary>
    public double? AttnLogitSoftcap { get; init; }
    /// <summary>Final logits are soft-capped, cap·tanh(x / cap) (Gemma 2).</summary>
    public double? FinalLogitSoftcap { get; init; }
    /// <summary>The FP8 scheme of config.json's quantization_config, or of <c>--quantization fp8</c>; null for a float checkpoint.</summary>
    public QuantizationConfig? Quantization { get; init; }
    /// <summary>Where this config came from (a config.json path or a preset name), for error messages.</summary>
    public string Source { get; init; } = "config.json";

    public int QDim => NumHeads * HeadDim;
    public int KvDim => NumKvHeads * HeadDim;

    /// <summary>Whether <paramref name="layer"/> attends within <see cref="SlidingWindow"/>.</summary>
    public bool IsSliding(int layer) => SlidingWindow is not null && layer < SlidingLayers.Count && SlidingLayers[layer];

    /// <summary>The window of <paramref name="layer"/>, or null where it attends to every earlier key.</summary>
    public int? WindowOf(int layer) => IsSliding(layer) ? SlidingWindow : null;

    public int SlidingLayerCount => Enumerable.Range(0, NumLayers).Count(IsSliding);

    /// <summary>The attention rule of <paramref name="layer"/>: its scale, window and soft cap.</summary>
    public AttentionRule AttentionOf(int layer) =>
        new((float)(1.0 / Math.Sqrt(QueryPreAttnScalar ?? HeadDim)), WindowOf(layer), AttnLogitSoftcap is double cap ? (float)cap : null);

    /// <summary>The RoPE of <paramref name="layer"/>.</summary>
    public RopeConfig RopeOf(int layer) => IsSliding(layer) && SlidingRope is { } local ? local : Rope;

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
            long norms = (SandwichNorms ? 4 : 2) * h + (QkNorm ? 2L * HeadDim : 0);
            long perLayer = attention + 3 * h * inter + norms;
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
        $"{ModelType}: {NumLayers} layers{(SlidingWindow is int w ? $" ({SlidingLayerCount} with window {w})" : "")}, hidden {HiddenSize}, " +
        $"{NumHeads} heads ({NumKvHeads} kv) x {HeadDim}, mlp {IntermediateSize}, vocab {VocabSize}, rope {Rope.RopeType} theta {Rope.Theta}" +
        $"{(SlidingRope is { } local ? $" (sliding layers: {local.RopeType} theta {local.Theta})" : "")}, {ParameterCount / 1e9:0.###}B params";
}
