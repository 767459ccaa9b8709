using LongCtx.Comm;
using LongCtx.Tensors;

namespace LongCtx.ContextParallel;

/// <summary>
/// Ring pass-Q (the paper's Algorithm "pass-Q"): KV stays where it is — it can be large, the cached
/// prefix plus the new tokens — and the queries travel. At step s rank r holds the queries of rank
/// (r − s) mod N, forwards them to r+1 and attends them to its own KV, keeping the partial output and LSE
/// for their owner. At the end one all-to-all returns every partial to its owner, who merges its N
/// partials by log-sum-exp.
///
///   step s: r holds Q(r−s)   send Q(r−s) → r+1 | partial[r−s] = Q(r−s)·KV(r)
///   end:    all-to-all partial[j] → rank j;  rank j merges N partials.
/// Pairs whose mask is empty send nothing (zero rows): both sides know it from the layouts.
/// </summary>
public sealed class RingPassQ : IAttentionStrategy
{
    public string Name => "pass-q";

    public Tensor Attend(AttentionLayer layer, Tensor q, Tensor k, Tensor v)
    {
        var b = layer.Backend;
        var step = layer.Step;
        int n = layer.Ranks;
        LocalKv.Store(layer, k, v);
        using var local = LocalKv.Block(layer);

        var partials = new (Tensor Output, Tensor Lse)?[n];
        var held = q;
        int origin = layer.Rank;
        for (int s = 0; s < n; s++)
        {
            ICommRequest? transfer = null;
            Tensor? incoming = null;
            int nextOrigin = (origin - 1 + n) % n;
            if (s < n - 1)
            {
                incoming = b.Allocate(b.ActivationType, step.QueriesByRank[nextOrigin].Count, layer.Heads, layer.HeadDim);
                transfer = layer.Comm.SendReceive([held], layer.Next, [incoming], layer.Previous);
            }
            partials[origin] = LocalKv.Attend(layer, held, step.QueriesByRank[origin], local.K, local.V, layer.Keys);
            if (transfer is null) break;
            transfer.Wait();
            if (!ReferenceEquals(held, q)) held.Dispose();
            held = incoming!;
            origin = nextOrigin;
        }
        if (!ReferenceEquals(held, q)) held.Dispose();

        // Return the partials to their owners.
        var sendOut = new Tensor[n];
        var sendLse = new Tensor[n];
        var recvOut = new Tensor[n];
        var recvLse = new Tensor[n];
        for (int j = 0; j < n; j++)
        {
            sendOut[j] = partials[j]?.Output ?? b.Allocate(b.ActivationType, 0, layer.Heads, layer.HeadDim);
            sendLse[j] = partials[j]?.Lse ?? b.Allocate(DType.F32, 0, layer.Heads);
            int rows = TokenLayout.NothingVisible(step.Queries, layer.KeysOf(j), layer.Window) ? 0 : q.Rows;
            recvOut[j] = b.Allocate(b.ActivationType, rows, layer.Heads, layer.HeadDim);
            recvLse[j] = b.Allocate(DType.F32, rows, layer.Heads);
        }
        layer.Comm.AllToAll(sendOut, recvOut);
        layer.Comm.AllToAll(sendLse, recvLse);
        foreach (var t in sendOut) t.Dispose();
        foreach (var t in sendLse) t.Dispose();

        var acc = new PartialAttention(b, q.Rows, layer.Heads, layer.HeadDim);
        for (int j = 0; j < n; j++)
        {
            if (recvOut[j].Rows == 0) { recvOut[j].Dispose(); recvLse[j].Dispose(); continue; }
            acc.Add(recvOut[j], recvLse[j]);
        }
        return acc.Result();
    }
}
