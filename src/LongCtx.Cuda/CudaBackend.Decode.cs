using LongCtx.Tensors;

namespace LongCtx.Cuda;

/// <summary>
/// Attention for few query rows (decode) through Kernels/decode.cu: each row's visible keys are one range
/// (<see cref="DecodeRows"/>), read once per KV head for all the query heads of its group, cut into splits
/// so the GPU is full, and the splits merged by log-sum-exp. Taken in every <see cref="AttentionImplementation"/>:
/// it is one of the own kernels.
/// </summary>
public sealed partial class CudaBackend
{
    /// <summary>
    /// The most query rows the decode kernel takes. It reads a row's keys for that row alone, so many rows over
    /// one sequence's keys would read them again per row; the tensor-core flash kernel shares each K/V tile
    /// among 128 rows and wins there.
    /// </summary>
    private const int DecodeMaxRows = 16;
    private const string DecodeSource = "decode.cu";
    // Enough blocks for this many per SM, but no split shorter than DecodeMinKeysPerSplit keys: below that the
    // fixed cost of a block (loading the queries, merging its warps, one more partial to merge) dominates.
    private const int DecodeBlocksPerMultiprocessor = 4, DecodeMinKeysPerSplit = 256, DecodeMaxSplits = 256;
    // A lane keeps HEADS·d/lanes floats of queries and as many of accumulators in registers. Past 64 of each the
    // kernel would spill, so a larger group's heads are shared among blocks that each read the KV head again
    // (concurrently, so mostly from L2).
    private const int DecodeLaneFloatsPerBlock = 64;
    private DecodeRowsCache? _decodeRows;
    private long _decodeCalls;

    /// <summary>Attention calls the decode kernel computed so far.</summary>
    public long DecodeAttentionCalls => _decodeCalls;

    private bool TryDecodeAttention(CudaTensor q, TokenLayout queries, CudaTensor k, CudaTensor v, TokenLayout keys, float scale, CudaTensor output, CudaTensor lse)
    {
        if (q.Rows > DecodeMaxRows || AttentionBlocks.Of(queries, keys) is not { } blocks) return false;
        int rows = q.Rows, heads = q.Shape[1], d = q.Shape[2], kvHeads = k.Shape[1], group = heads / kvHeads;
        _decodeRows ??= new DecodeRowsCache(ints => (CudaTensor)Upload<int>(ints, ints.Length));
        var ranges = _decodeRows.Of(queries, keys, blocks);
        int lanes = DecodeLanesPerKey(d), headsPerBlock = DecodeHeadsPerBlock(group, d), blocksPerKvHead = (group + headsPerBlock - 1) / headsPerBlock;
        int splits = DecodeSplits(_device.MultiprocessorCount, rows * kvHeads * blocksPerKvHead, ranges.MaxKeyCount);
        string[] defines = [$"HEAD_DIM={d}", $"LANES={lanes}", $"GROUP={group}", $"HEADS={headsPerBlock}"];
        var partial = _device.Function(DecodeSource, "decode_attention_partial", defines);
        // The merge needs only HEAD_DIM, but with the same defines it comes from the cubin just compiled.
        var merge = _device.Function(DecodeSource, "decode_attention_merge", defines);
        int rowHeads = rows * heads;
        long partLseBytes = (long)splits * rowHeads * sizeof(float), partOutBytes = partLseBytes * d;
        nint partOut = _device.Pool.Allocate(partOutBytes), partLse = _device.Pool.Allocate(partLseBytes);
        try
        {
            _device.Timed("attention", () =>
            {
                _device.Launch(partial, ((uint)splits, (uint)(kvHeads * blocksPerKvHead), (uint)rows), 128, 0,
                    q.Pointer, k.Pointer, v.Pointer, ranges.KeyStarts.Pointer, ranges.KeyCounts.Pointer, partOut, partLse,
                    rows, heads, kvHeads, scale * 1.4426950408889634f);
                _device.Launch(merge, ((uint)((rowHeads * 32 + 255) / 256), 1), 256, 0, partOut, partLse, output.Pointer, lse.Pointer, splits, rowHeads);
            });
        }
        finally
        {
            // Stream-ordered pool: the blocks only go to work queued after these kernels.
            _device.Pool.Free(partOut, partOutBytes);
            _device.Pool.Free(partLse, partLseBytes);
        }
        _decodeCalls++;
        return true;
    }

    /// <summary>
    /// Lanes that share one key's row: 16 when every lane gets an even number of dims (head dim a multiple of 32),
    /// else 8. 16 halve the registers a lane holds, which doubles the warps resident (Kernels/decode.cu).
    /// </summary>
    internal static int DecodeLanesPerKey(int headDim) => headDim % 32 == 0 ? 16 : 8;

    /// <summary>The query heads one block takes: the whole group, or an even share of it when that would not fit in registers.</summary>
    internal static int DecodeHeadsPerBlock(int group, int headDim)
    {
        int shares = CeilDiv(group * (headDim / DecodeLanesPerKey(headDim)), DecodeLaneFloatsPerBlock);
        return CeilDiv(group, shares);
    }

    /// <summary>
    /// How many parts each row's keys are cut into: enough blocks (<paramref name="blocksPerSplit"/> for each) for
    /// <see cref="DecodeBlocksPerMultiprocessor"/> per SM, but at least <see cref="DecodeMinKeysPerSplit"/> keys
    /// a part for the longest row, and at most <see cref="DecodeMaxSplits"/>.
    /// </summary>
    internal static int DecodeSplits(int multiprocessors, int blocksPerSplit, int maxKeyCount)
    {
        int toFill = CeilDiv(DecodeBlocksPerMultiprocessor * multiprocessors, blocksPerSplit);
        int worthwhile = CeilDiv(maxKeyCount, DecodeMinKeysPerSplit);
        return Math.Max(1, Math.Min(DecodeMaxSplits, Math.Min(toFill, worthwhile)));
    }

    private static int CeilDiv(int a, int b) => (a + b - 1) / b;
}
