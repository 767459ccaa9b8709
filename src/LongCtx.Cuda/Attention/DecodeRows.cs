using System.Runtime.InteropServices;
using LongCtx.Cuda.Runtime;
using LongCtx.Tensors;

namespace LongCtx.Cuda.Attention;

/// <summary>
/// What each query row of a decode launch sees: one contiguous key range [start, start + count) of its own K and V
/// (count 0: nothing). Every row of a call that decomposes into dense blocks sees such a range: its block's keys,
/// their prefix of a causal block, or its window of them (a sliding-window layer's cache holds a few rows more than
/// the window, which the range leaves out).
/// </summary>
internal static class DecodeRows
{
    /// <summary>
    /// Per query row, its first key and how many it sees: an unmasked block's rows all see its keys, row i of a
    /// causal or windowed block the keys <see cref="DenseBlock.VisibleKeys"/> says, and the rows of an empty run none.
    /// </summary>
    public static (int[] Starts, int[] Counts) KeyRanges(AttentionBlocks blocks, int rows)
    {
        var starts = new int[rows];
        var counts = new int[rows];
        foreach (var b in blocks.Blocks)
            for (int i = 0; i < b.QueryCount; i++)
            {
                var (start, end) = b.VisibleKeys(i);
                starts[b.QueryStart + i] = b.KeyStart + start;
                counts[b.QueryStart + i] = end - start;
            }
        // Rows of empty runs keep count 0 (their start is never read).
        return (starts, counts);
    }
}

/// <summary>
/// Kernels/decode_rows.cuh's DecodeRows, passed by value to the decode kernels (no upload): per row of the launch,
/// its K and V (a cache [keys, KV heads, D]) and the key range it sees. The rows of one launch may read different
/// caches: a decode step's sequences each read their own in one launch.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct DecodeRowsArgument
{
    public const int MaxRows = 16;
    private fixed long _k[MaxRows];
    private fixed long _v[MaxRows];
    private fixed int _start[MaxRows];
    private fixed int _count[MaxRows];

    /// <summary>
    /// Rows [first, first + queries.Count) read k and v as (queries, keys) decompose into dense blocks; false (and
    /// nothing set) when they do not or the rows would not fit.
    /// </summary>
    public bool TryAdd(int first, TokenLayout queries, CudaTensor k, CudaTensor v, TokenLayout keys, int? window)
    {
        if (first + queries.Count > MaxRows || keys.Count != k.Rows || AttentionBlocks.Of(queries, keys, window) is not { } blocks) return false;
        var (starts, counts) = DecodeRows.KeyRanges(blocks, queries.Count);
        for (int i = 0; i < queries.Count; i++)
        {
            _k[first + i] = k.Pointer;
            _v[first + i] = v.Pointer;
            _start[first + i] = starts[i];
            _count[first + i] = counts[i];
        }
        return true;
    }

    /// <summary>The most keys one of the first <paramref name="rows"/> rows sees (it sets how many splits the launch cuts).</summary>
    public int LongestCount(int rows)
    {
        int longest = 0;
        for (int i = 0; i < rows; i++) longest = Math.Max(longest, _count[i]);
        return longest;
    }
}
