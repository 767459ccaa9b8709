using LongCtx.Backends;
using LongCtx.ContextParallel;
using LongCtx.Tensors;

namespace LongCtx.Approximate;

/// <summary>
/// Keeps the top-scoring <c>count</c> entries of each KV head: K and V rows gathered per head into
/// [count, NKV, D] (RoPE was applied before, so each kept key still carries its original position); the rows kept,
/// per head in ascending order, are left in <c>keptRows</c> [count, NKV] (I32). The selection runs where the scores
/// are (<see cref="ICompressionOps.TopRowsPerHead"/>), so a layer does not wait for the host.
/// </summary>
public static class KvCompression
{
    public static void Compress(AttentionLayer layer, Tensor scores, Tensor k, Tensor v, int count, Tensor keptK, Tensor keptV, Tensor keptRows)
    {
        var b = layer.Backend;
        b.TopRowsPerHead(scores, count, keptRows);
        b.GatherRows(k, keptRows, keptK);
        b.GatherRows(v, keptRows, keptV);
    }
}
