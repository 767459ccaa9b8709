using LongCtx.Cuda.Native;
using LongCtx.Cuda.Runtime;
using LongCtx.Tensors;

namespace LongCtx.Cuda.Attention;

/// <summary>
/// The own flash-attention kernels, for the calls neither the decode kernel nor cuDNN takes (no cuDNN,
/// <see cref="AttentionImplementation.Kernel"/>, masks cuDNN does not express: APB's anchor + passing + local
/// blocks, keys by explicit positions, soft-capped scores): Kernels/attention_wgmma.cu (Hopper's warpgroup MMA) at head
/// dim 128 on sm_90, else Kernels/attention.cu (mma.sync, head dims 16 to 256 in steps of 16, any GPU since sm_80). Both
/// apply the rule's window (skipping key tiles wholly outside it) and soft cap. Takes every call.
/// </summary>
internal sealed class FlashAttention(CudaDevice device, DeviceLayouts layouts) : IAttentionPath
{
    /// <summary>
    /// One own attention kernel and its launch shape: threads a block, query rows a block, keys a tile (a multiple of
    /// the layouts' 64-row summaries) and dynamic shared memory.
    /// </summary>
    private readonly record struct FlashKernel(nint Function, uint Threads, int QueryRows, int KeyTile, uint SharedBytes, bool Wgmma);

    private readonly Dictionary<(int HeadDim, bool Wgmma), FlashKernel> _kernels = [];

    public long Calls { get; private set; }

    /// <summary>Of <see cref="Calls"/>, those the wgmma kernel computed.</summary>
    public long WgmmaCalls { get; private set; }

    private FlashKernel KernelFor(int d, bool allowWgmma)
    {
        bool wgmma = allowWgmma && d == 128 && device.ComputeMajor == 9 && device.ComputeMinor == 0;
        if (_kernels.TryGetValue((d, wgmma), out var kernel)) return kernel;
        if (wgmma)
        {
            // Q, two K and two V stages of 128 rows x 256 bytes from a 1024-byte boundary (the swizzle's period), then
            // nine mbarriers.
            kernel = new(device.Function("attention_wgmma.cu", "flash_attention_wgmma"), 384, 128, 128, 1024 + 5 * 128 * 256 + 128, Wgmma: true);
        }
        else
        {
            // Query rows a block: two 16-row MMA tiles per warp, one past head dim 128. The query tile and one K and
            // one V tile of 64 keys, rows padded by 8 elements against bank conflicts, then the query and key rows'
            // sequence ids and positions.
            int queryRows = d > 128 ? 64 : 128;
            const int keyTile = 64;
            uint shared = (uint)((queryRows + 2 * keyTile) * (d + 8) * 2 + 2 * (queryRows + keyTile) * sizeof(int));
            kernel = new(device.Function("attention.cu", "flash_attention", $"HEAD_DIM={d}"), 128, queryRows, keyTile, shared, Wgmma: false);
        }
        CudaDevice.AllowSharedMemory(kernel.Function, kernel.SharedBytes);
        return _kernels[(d, wgmma)] = kernel;
    }

    public unsafe bool TryRun(in AttentionCall call, AttentionSettings settings)
    {
        var (q, k, v, output, lse) = (call.Q, call.K, call.V, call.Output, call.Lse);
        int tq = q.Rows, tk = k.Rows, heads = q.Shape[1], d = q.Shape[2], kvHeads = k.Shape[1];
        float scale = call.Rule.Scale, softCap = call.Rule.SoftCap ?? 0f;
        int window = call.Rule.Window ?? int.MaxValue;
        Calls++;
        var kernel = KernelFor(d, settings.Wgmma);
        if (kernel.Wgmma) WgmmaCalls++;
        var ql = layouts.Of(call.Queries);
        var kl = layouts.Of(call.Keys);
        uint tiles = (uint)((tq + kernel.QueryRows - 1) / kernel.QueryRows);
        // Few queries against many keys would leave most SMs idle: split the keys over blocks (about 512 keys or
        // more each) and merge the partial results by log-sum-exp. Decode rows go to the decode kernel; this
        // serves the short calls it does not take (more rows than it takes, or layouts that are not dense blocks).
        int keyTiles = (tk + kernel.KeyTile - 1) / kernel.KeyTile;
        int splits = tq <= 64 && tk >= 1024 ? Math.Min(64, Math.Max(1, tk / 512)) : 1;
        int tilesPerSplit = (keyTiles + splits - 1) / splits;
        splits = (keyTiles + tilesPerSplit - 1) / tilesPerSplit;
        var partOut = splits > 1 ? device.Allocate(output.DType, [splits * tq, heads, d], zeroed: true) : output;
        var partLse = splits > 1 ? device.Allocate(DType.F32, [splits * tq, heads], zeroed: true) : lse;
        if (kernel.Wgmma)
        {
            // Three tensor maps, 64-byte aligned as the driver wants them; cuLaunchKernel copies them at the call.
            byte* buffer = stackalloc byte[3 * CudaDriver.TensorMapBytes + 64];
            byte* maps = (byte*)(((nint)buffer + 63) & ~(nint)63);
            EncodeRows(maps, q.Pointer, tq, heads);
            EncodeRows(maps + CudaDriver.TensorMapBytes, k.Pointer, tk, kvHeads);
            EncodeRows(maps + 2 * CudaDriver.TensorMapBytes, v.Pointer, tk, kvHeads);
            nint m = (nint)maps;
            device.Timed("attention", () => device.LaunchWithTensorMaps(kernel.Function, (tiles, (uint)heads, (uint)splits), kernel.Threads, kernel.SharedBytes,
                [m, m + CudaDriver.TensorMapBytes, m + 2 * CudaDriver.TensorMapBytes],
                ql.SeqIds.Pointer, ql.Positions.Pointer, kl.SeqIds.Pointer, kl.Positions.Pointer,
                ql.Tiles.Pointer, kl.Tiles.Pointer, partOut.Pointer, partLse.Pointer, tq, tk, heads, kvHeads, scale * 1.4426950408889634f, tilesPerSplit, window, softCap));
        }
        else
            device.Timed("attention", () => device.Launch(kernel.Function, (tiles, (uint)heads, (uint)splits), kernel.Threads, kernel.SharedBytes,
                q.Pointer, k.Pointer, v.Pointer, ql.SeqIds.Pointer, ql.Positions.Pointer, kl.SeqIds.Pointer, kl.Positions.Pointer,
                ql.Tiles.Pointer, kl.Tiles.Pointer, partOut.Pointer, partLse.Pointer, tq, tk, heads, kvHeads, scale * 1.4426950408889634f, tilesPerSplit, window, softCap));
        if (splits == 1) return true;
        device.Copy((CudaTensor)partOut.SliceRows(0, tq), output);
        device.Copy((CudaTensor)partLse.SliceRows(0, tq), lse);
        for (int s = 1; s < splits; s++)
            LseMerge.Merge(device, output, lse, (CudaTensor)partOut.SliceRows(s * tq, tq), (CudaTensor)partLse.SliceRows(s * tq, tq));
        partOut.Dispose();
        partLse.Dispose();
        return true;
    }

    /// <summary>
    /// A tensor map over a [rows, heads, 128] bf16 tensor for Kernels/attention_wgmma.cu: boxes of 128 rows x 64 head
    /// dims of one head, 128-byte swizzle (the kernel's shared-memory layout), rows past the end as zeros.
    /// </summary>
    private static unsafe void EncodeRows(byte* map, nint address, int rows, int heads)
    {
        ulong* dims = stackalloc ulong[] { 128, (ulong)heads, (ulong)rows };
        ulong* strides = stackalloc ulong[] { 256, (ulong)heads * 256 };
        uint* box = stackalloc uint[] { 64, 1, 128 };
        uint* elementStrides = stackalloc uint[] { 1, 1, 1 };
        CudaDriver.Check(CudaDriver.cuTensorMapEncodeTiled(map, CudaDriver.TensorMapBFloat16, 3, address, dims, strides, box, elementStrides,
            0, CudaDriver.TensorMapSwizzle128, CudaDriver.TensorMapL2Promotion256, 0), "cuTensorMapEncodeTiled");
    }

    public void Dispose() { }
}
