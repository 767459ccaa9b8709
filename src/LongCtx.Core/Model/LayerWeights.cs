using LongCtx.Tensors;

namespace LongCtx.Model;

/// <summary>
/// The weights of one decoder layer, in Hugging Face layout: projection matrices are [out, in] (a Linear's
/// weight), norms and biases are vectors. Biases are null when the model has none.
/// </summary>
public sealed class LayerWeights
{
    /// <summary>[NumHeads*HeadDim, Hidden]</summary>
    public required HostTensor QProj { get; init; }
    /// <summary>[NumKvHeads*HeadDim, Hidden]</summary>
    public required HostTensor KProj { get; init; }
    /// <summary>[NumKvHeads*HeadDim, Hidden]</summary>
    public required HostTensor VProj { get; init; }
    /// <summary>[Hidden, NumHeads*HeadDim]</summary>
    public required HostTensor OProj { get; init; }
    public HostTensor? QBias { get; init; }
    public HostTensor? KBias { get; init; }
    public HostTensor? VBias { get; init; }
    /// <summary>[Hidden]; only Llama checkpoints with attention_bias: true have it (Qwen2's o_proj has none).</summary>
    public HostTensor? OBias { get; init; }
    /// <summary>[Intermediate, Hidden]</summary>
    public required HostTensor GateProj { get; init; }
    /// <summary>[Intermediate, Hidden]</summary>
    public required HostTensor UpProj { get; init; }
    /// <summary>[Hidden, Intermediate]</summary>
    public required HostTensor DownProj { get; init; }
    /// <summary>[Hidden], RMSNorm before attention.</summary>
    public required HostTensor InputNorm { get; init; }
    /// <summary>[Hidden], RMSNorm before the MLP; with sandwich norms (Gemma), of the attention output before the residual add.</summary>
    public required HostTensor PostAttentionNorm { get; init; }
    /// <summary>[HeadDim], RMSNorm of each query head before RoPE (Qwen3, Gemma 3).</summary>
    public HostTensor? QNorm { get; init; }
    /// <summary>[HeadDim], RMSNorm of each key head before RoPE (Qwen3, Gemma 3).</summary>
    public HostTensor? KNorm { get; init; }
    /// <summary>[Hidden], with sandwich norms: RMSNorm before the MLP.</summary>
    public HostTensor? PreFeedforwardNorm { get; init; }
    /// <summary>[Hidden], with sandwich norms: RMSNorm of the MLP output before the residual add.</summary>
    public HostTensor? PostFeedforwardNorm { get; init; }
}
