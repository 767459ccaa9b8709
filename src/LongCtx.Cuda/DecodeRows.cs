using System.Runtime.CompilerServices;
using LongCtx.Tensors;

namespace LongCtx.Cuda;

/// <summary>
/// What each query row of an attention call sees, as the decode kernel reads it: one contiguous key range
/// [start, start + count) per row (count 0: nothing), in device memory, plus the longest range, which sets
/// how many splits the keys are cut into. Every row of a call that decomposes into dense blocks sees such a
/// range: its block's keys, or their prefix of a causal block.
/// </summary>
internal sealed class DecodeRows(CudaTensor keyStarts, CudaTensor keyCounts, int maxKeyCount) : IDisposable
{
    public CudaTensor KeyStarts => keyStarts;
    public CudaTensor KeyCounts => keyCounts;
    public int MaxKeyCount => maxKeyCount;

    ~DecodeRows() => Dispose();

    public void Dispose()
    {
        GC.SuppressFinalize(this);
        lock (this)
        {
            keyStarts.Dispose();
            keyCounts.Dispose();
        }
    }

    /// <summary>
    /// Per query row, its first key and how many it sees: an unmasked block's rows all see its keys, row i of a
    /// causal block (bottom-right aligned) the first KeyCount − QueryCount + i + 1, and the rows of an empty run none.
    /// </summary>
    public static (int[] Starts, int[] Counts) KeyRanges(AttentionBlocks blocks, int rows)
    {
        var starts = new int[rows];
        var counts = new int[rows];
        foreach (var b in blocks.Blocks)
            for (int i = 0; i < b.QueryCount; i++)
            {
                starts[b.QueryStart + i] = b.KeyStart;
                counts[b.QueryStart + i] = b.Causal ? b.KeyCount - b.QueryCount + i + 1 : b.KeyCount;
            }
        // Rows of empty runs keep count 0 (their start is never read).
        return (starts, counts);
    }
}

/// <summary>
/// The device copies of <see cref="DecodeRows"/>, keyed weakly by the (queries, keys) layout pair: every layer
/// of a decode step passes the same two layout objects, so the ranges are uploaded once per step.
/// </summary>
internal sealed class DecodeRowsCache(Func<int[], CudaTensor> upload)
{
    private readonly ConditionalWeakTable<TokenLayout, ConditionalWeakTable<TokenLayout, DecodeRows>> _table = new();

    /// <summary>The ranges of <paramref name="blocks"/>, which must be the decomposition of (queries, keys).</summary>
    public DecodeRows Of(TokenLayout queries, TokenLayout keys, AttentionBlocks blocks) =>
        _table.GetValue(queries, _ => new()).GetValue(keys, _ =>
        {
            var (starts, counts) = DecodeRows.KeyRanges(blocks, queries.Count);
            return new DecodeRows(upload(starts), upload(counts), counts.Max());
        });
}
