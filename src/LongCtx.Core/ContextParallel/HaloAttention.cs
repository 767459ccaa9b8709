using System.Runtime.InteropServices;
using LongCtx.Backends;
using LongCtx.Comm;
using LongCtx.Tensors;

namespace LongCtx.ContextParallel;

/// <summary>
/// A sliding-window layer's prefill over the ranks: instead of a ring that moves every rank's KV past every other
/// rank, each rank receives only the rows its queries can see from the others — for load-balanced chunks the last
/// W − 1 keys before each chunk, from the owners of the chunks before it (<see cref="HaloPlan"/>). The exchange runs
/// as ring steps at the distances that carry rows (for long prompts, ±1), one in flight at a time: the first is issued
/// before the rank attends to its own keys, each next one before it attends to the rows just received. Partial
/// results merge by log-sum-exp, as in the ring. Exact: every key a query sees is either held by its rank or sent to it
/// once.
/// </summary>
public sealed class HaloAttention : IAttentionStrategy
{
    public string Name => "halo";

    public Tensor Attend(AttentionLayer layer, Tensor q, Tensor k, Tensor v)
    {
        if (layer.Window is not int window) throw new ArgumentException($"layer {layer.Layer} has no window: the halo exchange is for sliding-window layers");
        var b = layer.Backend;
        var step = layer.Step;
        int n = layer.Ranks, me = layer.Rank;
        LocalKv.Store(layer, k, v);
        var halo = step.Windowed(window).Halo;
        using var own = LocalKv.Block(layer);
        var acc = new PartialAttention(b, q.Rows, layer.Heads, layer.HeadDim);
        var distances = Enumerable.Range(1, n - 1).Where(halo.Moves).ToArray();

        var pending = distances.Length > 0 ? Exchange(layer, halo, own, distances[0]) : null;
        if (LocalKv.Attend(layer, q, step.Queries, own.K, own.V, layer.Keys) is { } local) acc.Add(local.Output, local.Lse);
        for (int i = 0; i < distances.Length; i++)
        {
            var current = pending!;
            current.Request.Wait();
            current.Sent.Dispose();
            pending = i + 1 < distances.Length ? Exchange(layer, halo, own, distances[i + 1]) : null;
            int from = (me - distances[i] + n) % n;
            if (current.Received.K.Rows > 0
                && LocalKv.Attend(layer, q, step.Queries, current.Received.K, current.Received.V, halo.Layout(from, me)) is { } part)
                acc.Add(part.Output, part.Lse);
            current.Received.Dispose();
        }
        return acc.Result();
    }

    private sealed record Transfer(ICommRequest Request, KvBlock Sent, KvBlock Received);

    /// <summary>One ring step at <paramref name="distance"/>: this rank's rows the rank that far ahead sees, and the rows it sees of the rank that far behind.</summary>
    private static Transfer Exchange(AttentionLayer layer, HaloPlan halo, KvBlock own, int distance)
    {
        int n = layer.Ranks, me = layer.Rank, to = (me + distance) % n, from = (me - distance + n) % n;
        var sent = Gather(layer, own, halo.Runs(me, to), halo.Rows(me, to));
        int rows = halo.Rows(from, me);
        var received = LocalKv.Like(layer, own, rows, scratch: true);
        var request = layer.Comm.SendReceive([sent.K, sent.V], to, [received.K, received.V], from);
        return new Transfer(request, sent, received);
    }

    /// <summary>The rows of the runs, as one block: a view of the rank's own KV when they are one run, else a copy.</summary>
    private static KvBlock Gather(AttentionLayer layer, KvBlock own, IReadOnlyList<(int Start, int Count)> runs, int rows)
    {
        if (runs.Count == 1) return new KvBlock(own.K.SliceRows(runs[0].Start, rows), own.V.SliceRows(runs[0].Start, rows), Owned: false);
        var block = LocalKv.Like(layer, own, rows, scratch: true);
        var copies = new List<(Tensor Source, Tensor Destination)>(2 * runs.Count);
        int at = 0;
        foreach (var (start, count) in runs)
        {
            copies.Add((own.K.SliceRows(start, count), block.K.SliceRows(at, count)));
            copies.Add((own.V.SliceRows(start, count), block.V.SliceRows(at, count)));
            at += count;
        }
        layer.Backend.CopyEach(CollectionsMarshal.AsSpan(copies));
        return block;
    }
}
