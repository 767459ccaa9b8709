using LongCtx.Model;

namespace LongCtx.Planning;

/// <summary>What the cost model needs of a model: its layer shapes and how many weights of each kind it has.</summary>
public sealed record ModelShape(string Name, int Layers, int Hidden, int Heads, int KvHeads, int HeadDim, int Intermediate, int Vocab, bool TiedEmbeddings)
{
    public static ModelShape Of(ModelConfig c, string name) =>
        new(name, c.NumLayers, c.HiddenSize, c.NumHeads, c.NumKvHeads, c.HeadDim, c.IntermediateSize, c.VocabSize, c.TieWordEmbeddings);

    /// <summary>q, k, v and o of one layer.</summary>
    public long AttentionWeights => 2L * Hidden * Heads * HeadDim + 2L * Hidden * KvHeads * HeadDim;

    /// <summary>gate, up and down of one layer.</summary>
    public long MlpWeights => 3L * Hidden * Intermediate;

    /// <summary>Output rows of gate, up and down: one scale each in row-wise FP8.</summary>
    public long MlpRows => 2L * Intermediate + Hidden;

    /// <summary>The embedding table and the LM head (one table when tied).</summary>
    public long EmbeddingWeights => (long)Vocab * Hidden * (TiedEmbeddings ? 1 : 2);

    /// <summary>Two RMSNorm weights a layer and the final one.</summary>
    public long NormWeights => (2L * Layers + 1) * Hidden;

    /// <summary>The layers' GEMM FLOPs of one token: two per weight.</summary>
    public double LayerGemmFlopsPerToken => 2.0 * (AttentionWeights + MlpWeights);
}

/// <summary>
/// How the weights are stored. bf16: two bytes each (fp32: four, the CPU backend). fp8: Meta's row-wise FP8 of the
/// Llama 3.1 releases (fbgemm_fp8) and the paper's setup, one byte for each weight of the MLPs plus a float32 scale a row;
/// attention projections, embeddings, norms and the LM head stay bf16.
/// </summary>
public sealed record WeightFormat(string Name, int AttentionBytes, double MlpBytes, int MlpScaleBytesPerRow, int OtherBytes)
{
    public static readonly WeightFormat Bf16 = new("bf16", 2, 2, 0, 2);
    public static readonly WeightFormat Fp8 = new("fp8", 2, 1, 4, 2);
    public static readonly WeightFormat Fp32 = new("fp32", 4, 4, 0, 4);

    /// <summary>The GEMM rate a calibration lists for the MLPs of this format; attention projections run at <see cref="AttentionGemmType"/>.</summary>
    public string MlpGemmType => Name;
    public string AttentionGemmType => Name == "fp8" ? "bf16" : Name;

    public static WeightFormat Parse(string name) => name.ToLowerInvariant() switch
    {
        "bf16" => Bf16,
        "fp8" => Fp8,
        "fp32" => Fp32,
        _ => throw new SettingException(Setting.Dtype, "is unknown: use bf16, fp8 or fp32", name),
    };
}
