using LongCtx.Comm;
using LongCtx.Tensors;

namespace LongCtx.ContextParallel;

/// <summary>
/// Ring pass-KV (the paper's Algorithm "pass-KV"): queries stay, KV blocks travel. At step s rank r
/// holds the KV that rank (r − s) mod N computed; it forwards that block to r+1 while it attends its
/// own queries to it, then receives the next one from r−1. After N−1 hops every rank has seen every KV
/// block once; the partial outputs merge by log-sum-exp. Blocks the causal mask hides entirely are
/// forwarded but not computed.
///
///   step 0: r holds KV(r)     send KV(r)   → r+1   | compute Q(r)·KV(r)
///   step 1: r holds KV(r−1)   send KV(r−1) → r+1   | compute Q(r)·KV(r−1)
///   ...     step N−1: r holds KV(r+1), computes, sends nothing.
/// </summary>
public sealed class RingPassKv : IAttentionStrategy
{
    public string Name => "pass-kv";

    public Tensor Attend(AttentionLayer layer, Tensor q, Tensor k, Tensor v)
    {
        var b = layer.Backend;
        var step = layer.Step;
        LocalKv.Store(layer, k, v);
        var acc = new PartialAttention(b, q.Rows, layer.Heads, layer.HeadDim);
        var held = LocalKv.Block(layer);
        int origin = layer.Rank;
        for (int s = 0; s < layer.Ranks; s++)
        {
            ICommRequest? transfer = null;
            KvBlock incoming = default;
            int nextOrigin = (origin - 1 + layer.Ranks) % layer.Ranks;
            if (s < layer.Ranks - 1)
            {
                int rows = layer.KeysOf(nextOrigin).Count;
                incoming = LocalKv.Like(layer, held, rows);
                // Issued before this step's compute so the transfer runs while we attend.
                transfer = layer.Comm.SendReceive([held.K, held.V], layer.Next, [incoming.K, incoming.V], layer.Previous);
            }
            if (LocalKv.Attend(layer, q, step.Queries, held.K, held.V, layer.KeysOf(origin)) is { } part)
                acc.Add(part.Output, part.Lse);
            if (transfer is null) break;
            transfer.Wait();
            held.Dispose();
            held = incoming;
            origin = nextOrigin;
        }
        held.Dispose();
        return acc.Result();
    }
}
