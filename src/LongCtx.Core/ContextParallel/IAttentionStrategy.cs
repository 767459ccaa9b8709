using LongCtx.Tensors;

namespace LongCtx.ContextParallel;

/// <summary>
/// How attention is computed across ranks for one layer. Input: this rank's new rows' q [T, NH, D] and
/// k, v [T, NKV, D] (RoPE applied at global positions). The strategy stores the new KV in the rank's
/// cache as the step says and returns the exact (or, for approximate strategies, approximate) attention
/// output [T, NH, D] for this rank's rows.
/// </summary>
public interface IAttentionStrategy
{
    string Name { get; }
    Tensor Attend(AttentionLayer layer, Tensor q, Tensor k, Tensor v);
}
