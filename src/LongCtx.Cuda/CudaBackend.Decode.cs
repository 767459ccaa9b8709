using LongCtx.Backends;
using LongCtx.Tensors;

namespace LongCtx.Cuda;

/// <summary>
/// Attention for few query rows (decode) through Kernels/decode_mma.cu (tensor cores) or Kernels/decode.cu (CUDA
/// cores, for the shapes the first does not take): each row's visible keys are one range (<see cref="DecodeRows"/>),
/// read once per KV head for all the query heads of its group, cut into splits so the GPU is full, and the splits
/// merged by log-sum-exp by the last block of each (row, KV head) to finish (Kernels/decode_merge.cuh), in the same
/// launch. Taken in every <see cref="AttentionImplementation"/>: they are own kernels.
/// </summary>
public sealed unsafe partial class CudaBackend
{
    /// <summary>
    /// The most query rows the decode kernel takes. It reads a row's keys for that row alone, so many rows over
    /// one sequence's keys would read them again per row; the tensor-core flash kernel shares each K/V tile
    /// among 128 rows and wins there.
    /// </summary>
    private const int DecodeMaxRows = DecodeRowsArgument.MaxRows;
    private const string DecodeSource = "decode.cu", DecodeMmaSource = "decode_mma.cu";
    private const int DecodeThreads = 128;
    // CUDA-core kernel: enough blocks for this many per SM. Either kernel: no split shorter than
    // DecodeMinKeysPerSplit keys, below which the fixed cost of a block (loading the queries, merging its warps,
    // one more partial to merge) dominates.
    private const int DecodeBlocksPerMultiprocessor = 4, DecodeMinKeysPerSplit = 256, DecodeMaxSplits = 256;
    // A lane keeps HEADS·d/lanes floats of queries and as many of accumulators in registers. Past 64 of each the
    // kernel would spill, so a larger group's heads are shared among blocks that each read the KV head again
    // (concurrently, so mostly from L2).
    private const int DecodeLaneFloatsPerBlock = 64;
    // Tensor-core kernel: the GQA group is the MMA's 16 rows; a lane holds d/2 floats of output and d/4 registers of
    // queries (~154 registers at d = 128), and each of the 4 warps a ring of 16-key K and V chunks.
    private const int DecodeMmaMaxGroup = 16, DecodeMmaMaxHeadDim = 128, DecodeMmaWarps = 4, DecodeMmaKeysPerChunk = 16;

    /// <summary>
    /// The environment variable that sends decode attention to the CUDA-core kernel when 0 (the tensor-core kernel
    /// serves the shapes it takes by default), to compare the two on the GPU machine.
    /// </summary>
    public const string DecodeMmaVariable = "LONGCTX_DECODE_MMA";

    /// <summary>The environment variable that overrides the tensor-core kernel's chunks per warp ring (<see cref="DecodeMmaStages"/>), for tuning.</summary>
    public const string DecodeMmaStagesVariable = "LONGCTX_DECODE_MMA_STAGES";

    /// <summary>Whether decode attention takes the tensor-core kernel where it applies; false: always the CUDA-core kernel.</summary>
    internal bool UseDecodeMma { get; set; } = Environment.GetEnvironmentVariable(DecodeMmaVariable) switch
    {
        null or "" or "1" => true,
        "0" => false,
        var text => throw new LongCtxException($"{DecodeMmaVariable}={text}: give 1 (the default, the tensor-core decode kernel where it applies) or 0 (the CUDA-core kernel for all)"),
    };

    private readonly int? _decodeMmaStages = Environment.GetEnvironmentVariable(DecodeMmaStagesVariable) switch
    {
        null or "" => null,
        var text when int.TryParse(text, out int n) && n is >= 2 and <= 8 => n,
        var text => throw new LongCtxException($"{DecodeMmaStagesVariable}={text}: give 2 to 8 chunks per warp ring (as shared memory allows: up to 6 at head dim 128)"),
    };

    // One arrival counter per (row, block column) of the decode kernels' grid, zero between calls: the block that
    // counts last merges the splits and sets it back (Kernels/decode_merge.cuh). Grown when a grid needs more.
    private CudaTensor? _decodeArrivals;
    private readonly Dictionary<(int Group, int HeadDim, bool TensorCores), DecodeKernel> _decodeKernels = [];
    private long _decodeCalls, _decodeMmaCalls;

    /// <summary>Attention calls the decode kernels computed so far.</summary>
    public long DecodeAttentionCalls => _decodeCalls;

    /// <summary>Of <see cref="DecodeAttentionCalls"/>, those the tensor-core kernel computed.</summary>
    internal long DecodeMmaAttentionCalls => _decodeMmaCalls;

    private bool TryDecodeAttention(CudaTensor q, TokenLayout queries, CudaTensor k, CudaTensor v, TokenLayout keys, float scale, CudaTensor output, CudaTensor lse)
    {
        if (q.Rows > DecodeMaxRows) return false;
        var rows = new DecodeRowsArgument();
        if (!rows.TryAdd(0, queries, k, v, keys)) return false;
        LaunchDecode(q, rows, k.Shape[1], scale, output, lse);
        return true;
    }

    /// <summary>
    /// Runs of consecutive parts that the decode kernels take, up to <see cref="DecodeMaxRows"/> rows, in one launch
    /// each (a batch of 8 sequences decoding one token each: one launch a layer, not 8); any other part through
    /// <see cref="Attention"/>.
    /// </summary>
    public void AttentionEach(Tensor q, Tensor output, Tensor lse, float scale, params ReadOnlySpan<AttentionPart> parts)
    {
        var (qs, os, ls) = (C(q), C(output), C(lse));
        for (int i = 0; i < parts.Length;)
        {
            int first = parts[i].QueryRow, rows = 0, j = i, kvHeads = parts[i].K.Shape[1];
            var argument = new DecodeRowsArgument();
            for (; j < parts.Length; j++)
            {
                var p = parts[j];
                if (p.QueryRow != first + rows || rows + p.Queries.Count > DecodeMaxRows || p.K.Shape[1] != kvHeads || !DecodeShapeMatches(qs, C(p.K), C(p.V))
                    || !argument.TryAdd(rows, p.Queries, C(p.K), C(p.V), p.Keys)) break;
                rows += p.Queries.Count;
            }
            if (j == i)
            {
                var p = parts[i++];
                int n = p.Queries.Count;
                Attention(q.SliceRows(p.QueryRow, n), p.Queries, p.K, p.V, p.Keys, scale, output.SliceRows(p.QueryRow, n), lse.SliceRows(p.QueryRow, n));
                continue;
            }
            if (rows > 0) LaunchDecode(C(qs.SliceRows(first, rows)), argument, kvHeads, scale, C(os.SliceRows(first, rows)), C(ls.SliceRows(first, rows)));
            i = j;
        }
    }

    /// <summary>Whether k and v [keys, KV heads, D] fit q [rows, heads, D] as the decode kernels need (else the part goes to <see cref="Attention"/>, which says what is wrong).</summary>
    private static bool DecodeShapeMatches(CudaTensor q, CudaTensor k, CudaTensor v) =>
        k.Shape.Length == 3 && k.Shape[2] == q.Shape[2] && q.Shape[1] % k.Shape[1] == 0 && v.Shape.SequenceEqual(k.Shape) && q.Shape[2] % 16 == 0 && q.Shape[2] <= 256;

    /// <summary>
    /// The decode kernel over q's rows, each reading its own keys as <paramref name="rows"/> says: the splits of every
    /// row's range, merged by the last split of each (row, KV head) in the same launch.
    /// </summary>
    private void LaunchDecode(CudaTensor q, DecodeRowsArgument rows, int kvHeads, float scale, CudaTensor output, CudaTensor lse)
    {
        int rowCount = q.Rows, heads = q.Shape[1], d = q.Shape[2], group = heads / kvHeads;
        var kernel = DecodeKernelFor(group, d);
        int blocksPerKvHead = kernel.BlocksPerKvHead;
        int splits = DecodeSplits(kernel.ResidentBlocks, rowCount * kvHeads * blocksPerKvHead, rows.LongestCount(rowCount));
        int rowHeads = rowCount * heads;
        long partLseBytes = (long)splits * rowHeads * sizeof(float), partOutBytes = partLseBytes * d;
        int columns = kvHeads * blocksPerKvHead;
        if (_decodeArrivals is not { } arrivals || arrivals.Length < rowCount * columns)
        {
            _decodeArrivals?.Dispose();
            _decodeArrivals = arrivals = (CudaTensor)Upload<int>(new int[DecodeMaxRows * columns], DecodeMaxRows * columns);
        }
        nint partOut = _device.Pool.Allocate(partOutBytes), partLse = _device.Pool.Allocate(partLseBytes);
        nint byValue = (nint)(&rows); // the driver copies the argument at the launch
        try
        {
            _device.Timed("attention", () => _device.LaunchDependentWithStruct(kernel.Partial, ((uint)splits, (uint)columns, (uint)rowCount), DecodeThreads, kernel.SharedBytes,
                byValue, q.Pointer, partOut, partLse, output.Pointer, lse.Pointer, arrivals.Pointer, rowCount, heads, kvHeads, scale * 1.4426950408889634f));
        }
        finally
        {
            // Stream-ordered pool: the blocks only go to work queued after these kernels.
            _device.Pool.Free(partOut, partOutBytes);
            _device.Pool.Free(partLse, partLseBytes);
        }
        _decodeCalls++;
        if (kernel.TensorCores) _decodeMmaCalls++;
    }

    /// <summary>
    /// The decode kernel of one shape and how to launch it, looked up once: tensor cores where
    /// <see cref="DecodeMmaTakes"/>, else CUDA cores, the dynamic shared memory,
    /// how many blocks the GPU holds at once (for the tensor-core kernel, from the occupancy API: its grid is one
    /// wave, so every split's block runs from the start and the splits, equal shares, end together) and the blocks
    /// that share a KV head's group (the CUDA-core kernel may split a group whose queries would not fit in registers).
    /// </summary>
    private readonly record struct DecodeKernel(nint Partial, uint SharedBytes, int ResidentBlocks, int BlocksPerKvHead, bool TensorCores);

    private DecodeKernel DecodeKernelFor(int group, int d)
    {
        bool tensorCores = UseDecodeMma && DecodeMmaTakes(group, d);
        if (_decodeKernels.TryGetValue((group, d, tensorCores), out var kernel)) return kernel;
        int headsPerBlock = DecodeHeadsPerBlock(group, d);
        string[] defines = [$"HEAD_DIM={d}", $"LANES={DecodeLanesPerKey(d)}", $"GROUP={group}", $"HEADS={headsPerBlock}"];
        if (tensorCores)
        {
            int stages = _decodeMmaStages ?? DecodeMmaStages;
            var partial = _device.Function(DecodeMmaSource, "decode_attention_partial_mma", $"HEAD_DIM={d}", $"GROUP={group}", $"STAGES={stages}");
            uint shared = DecodeMmaSharedBytes(d, stages);
            _device.AllowSharedMemory(partial, shared);
            int perMultiprocessor = Math.Max(1, _device.ResidentBlocksPerMultiprocessor(partial, DecodeThreads, shared));
            kernel = new(partial, shared, perMultiprocessor * _device.MultiprocessorCount, BlocksPerKvHead: 1, TensorCores: true);
        }
        else
            kernel = new(_device.Function(DecodeSource, "decode_attention_partial", defines), 0,
                DecodeBlocksPerMultiprocessor * _device.MultiprocessorCount, CeilDiv(group, headsPerBlock), TensorCores: false);
        return _decodeKernels[(group, d, tensorCores)] = kernel;
    }

    /// <summary>
    /// Whether the tensor-core kernel takes the shape: head dims that are multiples of 16 (the MMA's k-step) up to 128
    /// (its registers), groups of up to 16 query heads (the MMA's rows).
    /// </summary>
    internal static bool DecodeMmaTakes(int group, int headDim) => group <= DecodeMmaMaxGroup && headDim % 16 == 0 && headDim <= DecodeMmaMaxHeadDim;

    /// <summary>
    /// Chunks in each warp's ring of the tensor-core kernel: STAGES − 1 are in flight while one is computed. 4 at
    /// every head dim: at d = 128 that is 136 KB a block, one block an SM, and it read K and V faster than 3 stages
    /// with two blocks an SM (3.84 against 3.69 TB/s at 131K keys, 1.67 against 1.24 at 8K; 5 and 6 no faster).
    /// </summary>
    internal const int DecodeMmaStages = 4;

    /// <summary>The tensor-core kernel's dynamic shared memory: per warp, STAGES chunks of K and V rows padded by 8 bf16.</summary>
    internal static uint DecodeMmaSharedBytes(int headDim, int stages) => (uint)(DecodeMmaWarps * stages * 2 * DecodeMmaKeysPerChunk * (headDim + 8) * 2);

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
    /// How many parts each row's keys are cut into: as many blocks (<paramref name="blocksPerSplit"/> for each) as
    /// fit in <paramref name="residentBlocks"/> (not more: a few blocks of a second wave would double the time of
    /// equal shares), but at least <see cref="DecodeMinKeysPerSplit"/> keys a part for the longest row, and at
    /// most <see cref="DecodeMaxSplits"/>.
    /// </summary>
    internal static int DecodeSplits(int residentBlocks, int blocksPerSplit, int maxKeyCount)
    {
        int toFill = residentBlocks / blocksPerSplit;
        int worthwhile = CeilDiv(maxKeyCount, DecodeMinKeysPerSplit);
        return Math.Max(1, Math.Min(DecodeMaxSplits, Math.Min(toFill, worthwhile)));
    }

    private static int CeilDiv(int a, int b) => (a + b - 1) / b;
}
