using LongCtx.Backends;
using LongCtx.Cuda.Runtime;
using LongCtx.Tensors;

namespace LongCtx.Cuda.Attention;

/// <summary>
/// Attention for few query rows (decode) through Kernels/decode_mma.cu (tensor cores) or Kernels/decode.cu (CUDA
/// cores, for the shapes the first does not take): each row's visible keys are one range (<see cref="DecodeRows"/>),
/// read once per KV head for all the query heads of its group, cut into splits so the GPU is full, and the splits
/// merged by log-sum-exp by the last block of each (row, KV head) to finish (Kernels/decode_merge.cuh), in the same
/// launch. Taken in every <see cref="AttentionImplementation"/>: they are own kernels. An FP8 KV cache (K and V
/// F8E4M3 codes, their <see cref="Tensor.Scale"/>s) is read by decode.cu built with KV_FP8: one byte a value, the key
/// scale folded into the softmax scale and the value scale into each split's output.
/// </summary>
internal sealed unsafe class DecodeAttention(CudaDevice device) : IAttentionPath
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

    // One arrival counter per (row, block column) of the decode kernels' grid, zero between calls: the block that
    // counts last merges the splits and sets it back (Kernels/decode_merge.cuh). Grown when a grid needs more.
    private CudaTensor? _arrivals;
    private readonly Dictionary<(int Group, int HeadDim, bool TensorCores, bool Fp8), DecodeKernel> _decodeKernels = [];

    /// <summary>Attention calls the decode kernels computed so far.</summary>
    public long Calls { get; private set; }

    /// <summary>Of <see cref="Calls"/>, those the tensor-core kernel computed.</summary>
    public long MmaCalls { get; private set; }

    public bool TryRun(in AttentionCall call, AttentionSettings settings)
    {
        if (call.Q.Rows > DecodeMaxRows || call.Rule.SoftCap is not null) return false;
        var rows = new DecodeRowsArgument();
        if (!rows.TryAdd(0, call.Queries, call.K, call.V, call.Keys, call.Rule.Window)) return false;
        Launch(call.Q, rows, call.K.Shape[1], call.Rule.Scale, call.Output, call.Lse, settings, KvOf(call.K, call.V));
        return true;
    }

    /// <summary>
    /// The run of consecutive parts from <paramref name="first"/> on that the decode kernels take, up to
    /// <see cref="DecodeMaxRows"/> rows, in one launch (a batch of 8 sequences decoding one token each: one launch a
    /// layer, not 8). Returns how many parts it took: 0 leaves part <paramref name="first"/> to another path. Soft-capped
    /// products (Gemma 2) go to the flash kernel, which caps them.
    /// </summary>
    public int TryRunEach(CudaTensor q, CudaTensor output, CudaTensor lse, AttentionRule rule, ReadOnlySpan<AttentionPart> parts, int first, AttentionSettings settings)
    {
        if (rule.SoftCap is not null) return 0;
        int firstRow = parts[first].QueryRow, rows = 0, j = first, kvHeads = parts[first].K.Shape[1];
        var kv = KvOf(parts[first].K, parts[first].V);
        var argument = new DecodeRowsArgument();
        for (; j < parts.Length; j++)
        {
            var p = parts[j];
            if (p.QueryRow != firstRow + rows || rows + p.Queries.Count > DecodeMaxRows || p.K.Shape[1] != kvHeads || !ShapeMatches(q, (CudaTensor)p.K, (CudaTensor)p.V)
                || KvOf(p.K, p.V) != kv || !argument.TryAdd(rows, p.Queries, (CudaTensor)p.K, (CudaTensor)p.V, p.Keys, rule.Window)) break;
            rows += p.Queries.Count;
        }
        if (j > first && rows > 0)
            Launch((CudaTensor)q.SliceRows(firstRow, rows), argument, kvHeads, rule.Scale, (CudaTensor)output.SliceRows(firstRow, rows), (CudaTensor)lse.SliceRows(firstRow, rows), settings, kv);
        return j - first;
    }

    /// <summary>An FP8 cache's key and value scales; null for a bf16 one (the rows of one launch read one kind).</summary>
    private static (float K, float V)? KvOf(Tensor k, Tensor v) => k.DType == DType.F8E4M3 ? (k.Scale, v.Scale) : null;

    /// <summary>Whether k and v [keys, KV heads, D] fit q [rows, heads, D] as the decode kernels need (else the part goes to another path, after the backend says what is wrong).</summary>
    private static bool ShapeMatches(CudaTensor q, CudaTensor k, CudaTensor v) =>
        k.Shape.Length == 3 && k.Shape[2] == q.Shape[2] && q.Shape[1] % k.Shape[1] == 0 && v.Shape.SequenceEqual(k.Shape) && q.Shape[2] % 16 == 0 && q.Shape[2] <= 256;

    /// <summary>
    /// The decode kernel over q's rows, each reading its own keys as <paramref name="rows"/> says: the splits of every
    /// row's range, merged by the last split of each (row, KV head) in the same launch.
    /// </summary>
    private void Launch(CudaTensor q, DecodeRowsArgument rows, int kvHeads, float scale, CudaTensor output, CudaTensor lse, AttentionSettings settings, (float K, float V)? fp8)
    {
        int rowCount = q.Rows, heads = q.Shape[1], d = q.Shape[2], group = heads / kvHeads;
        var kernel = KernelFor(group, d, settings, fp8 is not null);
        int blocksPerKvHead = kernel.BlocksPerKvHead;
        int splits = DecodeSplits(kernel.ResidentBlocks, rowCount * kvHeads * blocksPerKvHead, rows.LongestCount(rowCount));
        int rowHeads = rowCount * heads;
        long partLseBytes = (long)splits * rowHeads * sizeof(float), partOutBytes = partLseBytes * d;
        int columns = kvHeads * blocksPerKvHead;
        if (_arrivals is not { } arrivals || arrivals.Length < rowCount * columns)
        {
            _arrivals?.Dispose();
            _arrivals = arrivals = device.Allocate(DType.I32, [DecodeMaxRows * columns], zeroed: true);
        }
        nint partOut = device.Pool.Allocate(partOutBytes), partLse = device.Pool.Allocate(partLseBytes);
        nint byValue = (nint)(&rows); // the driver copies the argument at the launch
        float scaleLog2 = scale * (fp8?.K ?? 1f) * 1.4426950408889634f;
        try
        {
            // decode.cu takes the FP8 cache's value scale last (1 for bf16); decode_mma.cu never reads an FP8 cache.
            if (kernel.TensorCores)
                device.Timed("attention", () => device.LaunchDependentWithStruct(kernel.Partial, ((uint)splits, (uint)columns, (uint)rowCount), DecodeThreads, kernel.SharedBytes,
                    byValue, q.Pointer, partOut, partLse, output.Pointer, lse.Pointer, arrivals.Pointer, rowCount, heads, kvHeads, scaleLog2));
            else
                device.Timed("attention", () => device.LaunchDependentWithStruct(kernel.Partial, ((uint)splits, (uint)columns, (uint)rowCount), DecodeThreads, kernel.SharedBytes,
                    byValue, q.Pointer, partOut, partLse, output.Pointer, lse.Pointer, arrivals.Pointer, rowCount, heads, kvHeads, scaleLog2, fp8?.V ?? 1f));
        }
        finally
        {
            // Stream-ordered pool: the blocks only go to work queued after these kernels.
            device.Pool.Free(partOut, partOutBytes);
            device.Pool.Free(partLse, partLseBytes);
        }
        Calls++;
        if (kernel.TensorCores) MmaCalls++;
    }

    /// <summary>
    /// The decode kernel of one shape and how to launch it, looked up once: tensor cores where
    /// <see cref="DecodeMmaTakes"/>, else CUDA cores, the dynamic shared memory,
    /// how many blocks the GPU holds at once (for the tensor-core kernel, from the occupancy API: its grid is one
    /// wave, so every split's block runs from the start and the splits, equal shares, end together) and the blocks
    /// that share a KV head's group (the CUDA-core kernel may split a group whose queries would not fit in registers).
    /// </summary>
    private readonly record struct DecodeKernel(nint Partial, uint SharedBytes, int ResidentBlocks, int BlocksPerKvHead, bool TensorCores);

    private DecodeKernel KernelFor(int group, int d, AttentionSettings settings, bool fp8)
    {
        bool tensorCores = !fp8 && settings.DecodeMma && DecodeMmaTakes(group, d);
        if (_decodeKernels.TryGetValue((group, d, tensorCores, fp8), out var kernel)) return kernel;
        int headsPerBlock = DecodeHeadsPerBlock(group, d);
        string[] defines = [$"HEAD_DIM={d}", $"LANES={DecodeLanesPerKey(d)}", $"GROUP={group}", $"HEADS={headsPerBlock}", $"KV_FP8={(fp8 ? 1 : 0)}"];
        if (tensorCores)
        {
            int stages = settings.DecodeMmaStages ?? DecodeMmaStages;
            var partial = device.Function(DecodeMmaSource, "decode_attention_partial_mma", $"HEAD_DIM={d}", $"GROUP={group}", $"STAGES={stages}");
            uint shared = DecodeMmaSharedBytes(d, stages);
            CudaDevice.AllowSharedMemory(partial, shared);
            int perMultiprocessor = Math.Max(1, CudaDevice.ResidentBlocksPerMultiprocessor(partial, DecodeThreads, shared));
            kernel = new(partial, shared, perMultiprocessor * device.MultiprocessorCount, BlocksPerKvHead: 1, TensorCores: true);
        }
        else
            kernel = new(device.Function(DecodeSource, "decode_attention_partial", defines), 0,
                DecodeBlocksPerMultiprocessor * device.MultiprocessorCount, CeilDiv(group, headsPerBlock), TensorCores: false);
        return _decodeKernels[(group, d, tensorCores, fp8)] = kernel;
    }

    /// <summary>
    /// Whether the tensor-core kernel takes the shape: head dims that are multiples of 16 (the MMA's k-step) up to 128
    /// (its registers), groups of up to 16 query heads (the MMA's rows).
    /// </summary>
    internal static bool DecodeMmaTakes(int group, int headDim) => group <= DecodeMmaMaxGroup && headDim % 16 == 0 && headDim <= DecodeMmaMaxHeadDim;

    /// <summary>
    /// Chunks in each warp's ring of the tensor-core kernel: STAGES − 1 are in flight while one is computed. 4 at
    /// every head dim: at d = 128 that is 136 KB a block, one block an SM, and it reads K and V faster than 3 stages
    /// with two blocks an SM; 5 and 6 were no faster.
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

    private static int CeilDiv(int a, int b) => Launches.CeilDiv(a, b);

    public void Dispose() => _arrivals?.Dispose();
}
