using LongCtx.Backends.Cpu;
using LongCtx.ContextParallel;
using LongCtx.Tensors;

namespace LongCtx.Tests.ContextParallel;

/// <summary>
/// What the strategy tests' random problems share: sequences with cached prefixes (KV already placed on random ranks)
/// and new tokens, q, k and v for every token.
/// </summary>
internal abstract class KvProblem
{
    public required int Ranks, Heads, KvHeads, HeadDim;
    public required int[] Cached, New;
    public required int[][] CachedRank;              // per sequence, per cached position: its rank
    public required float[][] Q, K, V;               // per sequence: all positions [len, heads|kvHeads, d]

    protected KvPlacement[] Placements() => Cached.Select((c, s) =>
    {
        var p = new KvPlacement(Ranks);
        for (int pos = 0; pos < c; pos++) p.Append(CachedRank[s][pos], [pos]);
        return p;
    }).ToArray();

    /// <summary>Rows of the per-sequence arrays at a layout's (sequence, position) pairs.</summary>
    protected Tensor Gather(CpuBackend backend, TokenLayout layout, float[][] source, int heads, int? onlySequence = null)
    {
        int row = heads * HeadDim;
        var data = new float[layout.Count * row];
        for (int i = 0; i < layout.Count; i++)
            Array.Copy(source[onlySequence ?? layout.SeqIds[i]], layout.Positions[i] * row, data, i * row, row);
        return backend.Upload<float>(data, layout.Count, heads, HeadDim);
    }
}
