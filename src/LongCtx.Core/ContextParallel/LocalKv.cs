using System.Runtime.InteropServices;
using LongCtx.Backends;
using LongCtx.Tensors;

namespace LongCtx.ContextParallel;

/// <summary>What every strategy does with the rank's own KV: store the new rows, and see all it holds as one block.</summary>
internal static class LocalKv
{
    /// <summary>The pass's new K and V rows into the caches the step appends them to, in one <see cref="BackendOps.CopyEach"/>.</summary>
    public static void Store(AttentionLayer layer, Tensor k, Tensor v)
    {
        var copies = new List<(Tensor Source, Tensor Destination)>(2 * layer.Step.Appends.Count);
        foreach (var a in layer.Step.Appends)
        {
            if (a.Count == 0) continue;
            var (keys, values) = layer.Step.Caches[a.Cache].Claim(layer.Layer, a.Count);
            copies.Add((k.SliceRows(a.Row, a.Count), keys));
            copies.Add((v.SliceRows(a.Row, a.Count), values));
        }
        layer.Backend.CopyEach(CollectionsMarshal.AsSpan(copies));
    }

    /// <summary>
    /// After a sliding-window layer's attention, each cache drops the rows no later query sees (<see cref="WindowedKeys.DropAfter"/>).
    /// </summary>
    public static void Forget(AttentionLayer layer)
    {
        if (layer.Window is not int w) return;
        var drop = layer.Step.Windowed(w).DropAfter;
        for (int i = 0; i < drop.Length; i++)
            if (drop[i] > 0) layer.Step.Caches[i].Forget(layer.Layer, drop[i]);
    }

    /// <summary>
    /// The rank's KV for this layer in the order of <see cref="AttentionLayer.Keys"/>: the cache itself when
    /// the batch has one sequence, else the caches copied one after another.
    /// </summary>
    public static KvBlock Block(AttentionLayer layer)
    {
        var caches = layer.Step.Caches;
        if (caches.Count == 1)
        {
            var keys = caches[0].Keys(layer.Layer);
            if (keys.Rows != layer.Keys.Count) throw new InvalidOperationException($"rank {layer.Rank} holds {keys.Rows} KV rows in layer {layer.Layer}, its plan says {layer.Keys.Count}");
            return new KvBlock(keys, caches[0].Values(layer.Layer), Owned: false);
        }
        var b = layer.Backend;
        int rows = layer.Keys.Count;
        var block = Like(layer, new KvBlock(caches[0].Keys(layer.Layer), caches[0].Values(layer.Layer), Owned: false), rows);
        var (k, v) = (block.K, block.V);
        int at = 0;
        foreach (var c in caches)
        {
            var ck = c.Keys(layer.Layer);
            if (ck.Rows == 0) continue;
            b.Copy(ck, k.SliceRows(at, ck.Rows));
            b.Copy(c.Values(layer.Layer), v.SliceRows(at, ck.Rows));
            at += ck.Rows;
        }
        if (at != rows) throw new InvalidOperationException($"rank {layer.Rank} holds {at} KV rows, its plan says {rows}");
        return block;
    }

    /// <summary>
    /// A block of <paramref name="rows"/> rows of the element type and scales of <paramref name="like"/> (the FP8 cache's
    /// codes travel as codes); <paramref name="scratch"/>: left unfilled, for a caller that writes every row.
    /// </summary>
    public static KvBlock Like(AttentionLayer layer, KvBlock like, int rows, bool scratch = false)
    {
        var b = layer.Backend;
        var k = scratch ? b.Scratch(like.K.DType, rows, layer.KvHeads, layer.HeadDim) : b.Allocate(like.K.DType, rows, layer.KvHeads, layer.HeadDim);
        var v = scratch ? b.Scratch(like.V.DType, rows, layer.KvHeads, layer.HeadDim) : b.Allocate(like.V.DType, rows, layer.KvHeads, layer.HeadDim);
        k.Scale = like.K.Scale;
        v.Scale = like.V.Scale;
        return new KvBlock(k, v, Owned: true);
    }

    /// <summary>
    /// The step's queries against all the KV this rank holds, into output and lse: each sequence's queries against
    /// its own cache, read in place (<see cref="BackendOps.AttentionEach"/>: on the GPU one launch for a decode step's
    /// sequences), when each sequence's query rows are contiguous (a decode step: one row each); else one call
    /// against <see cref="Block"/>. For a batch of long caches the
    /// copy Block makes costs more than the attention. Keys of other sequences are invisible anyway, so the
    /// split changes no result; a sequence with no KV here gets output 0 and LSE −inf from its empty cache.
    /// </summary>
    public static void AttendInPlace(AttentionLayer layer, Tensor q, Tensor output, Tensor lse)
    {
        var b = layer.Backend;
        var step = layer.Step;
        if (step.Caches.Count > 1 && step.PartsByCache(layer.Keys) is { } parts)
        {
            var each = new AttentionPart[parts.Count];
            for (int i = 0; i < each.Length; i++)
            {
                var (cache, p) = (step.Caches[parts[i].Cache], parts[i]);
                var keys = cache.Keys(layer.Layer);
                if (keys.Rows != p.Keys.Count) throw new InvalidOperationException($"rank {layer.Rank} holds {keys.Rows} KV rows of sequence {p.Cache} in layer {layer.Layer}, its plan says {p.Keys.Count}");
                each[i] = new AttentionPart(p.QueryRow, p.Queries, keys, cache.Values(layer.Layer), p.Keys);
            }
            b.AttentionEach(q, output, lse, layer.Rule, each);
            return;
        }
        using var local = Block(layer);
        b.Attention(q, step.Queries, local.K, local.V, layer.Keys, layer.Rule, output, lse);
    }

    /// <summary>Attention of a query block against a key block, or null when the mask (with the layer's window) hides every key.</summary>
    public static (Tensor Output, Tensor Lse)? Attend(AttentionLayer layer, Tensor q, TokenLayout queries, Tensor k, Tensor v, TokenLayout keys)
    {
        if (TokenLayout.NothingVisible(queries, keys, layer.Window)) return null;
        var b = layer.Backend;
        // Attention writes every row (a row that sees nothing gets 0 and −inf), so no zero fill first.
        var output = b.Scratch(b.ActivationType, q.Rows, layer.Heads, layer.HeadDim);
        var lse = b.Scratch(DType.F32, q.Rows, layer.Heads);
        b.Attention(q, queries, k, v, keys, layer.Rule, output, lse);
        return (output, lse);
    }
}

/// <summary>A block of keys and values; Owned when it is a copy the holder must free.</summary>
internal readonly record struct KvBlock(Tensor K, Tensor V, bool Owned) : IDisposable
{
    public void Dispose()
    {
        if (!Owned) return;
        K.Dispose();
        V.Dispose();
    }
}
