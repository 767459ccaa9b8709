using LongCtx.ContextParallel;
using LongCtx.Tensors;

namespace LongCtx.Approximate;

/// <summary>
/// Star Attention, phase 1 (context encoding; arXiv 2411.17116 Algorithm 1): rank r attends its rows
/// [anchor copy | block r] causally and nothing else — no communication. Rank 0's block starts with the
/// anchor, so it needs no copy. Only the block's KV is stored; the anchor copy's is dropped with the
/// layer's q, k, v. Phase 2 (the query and decoding attend to every rank's kept KV, merged by log-sum-exp)
/// is <see cref="DistributedDecode"/>.
/// </summary>
public sealed class StarAttention(ContextBlocks blocks) : IAttentionStrategy
{
    public string Name => "star";

    public Tensor Attend(AttentionLayer layer, Tensor q, Tensor k, Tensor v)
    {
        LocalKv.Store(layer, k, v);
        // Global positions make this one causal call: the anchor (positions < l_a) precedes every block.
        var rows = blocks.ContextLayout(layer.Rank);
        var acc = new PartialAttention(layer.Backend, q.Rows, layer.Heads, layer.HeadDim);
        if (LocalKv.Attend(layer, q, rows, k, v, rows) is { } r) acc.Add(r.Output, r.Lse);
        return acc.Result();
    }
}
