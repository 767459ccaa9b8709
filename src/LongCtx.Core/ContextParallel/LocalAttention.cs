using LongCtx.Tensors;

namespace LongCtx.ContextParallel;

/// <summary>Dense attention on one rank: the reference every parallel strategy must equal.</summary>
public sealed class LocalAttention : IAttentionStrategy
{
    public string Name => "dense";

    public Tensor Attend(AttentionLayer layer, Tensor q, Tensor k, Tensor v)
    {
        if (layer.Ranks != 1) throw new LongCtxException($"strategy dense runs on one rank, not {layer.Ranks}: use pass-kv, pass-q or auto");
        LocalKv.Store(layer, k, v);
        using var kv = LocalKv.Block(layer);
        var acc = new PartialAttention(layer.Backend, q.Rows, layer.Heads, layer.HeadDim);
        if (LocalKv.Attend(layer, q, layer.Step.Queries, kv.K, kv.V, layer.Keys) is { } r) acc.Add(r.Output, r.Lse);
        return acc.Result();
    }
}
