using LongCtx.Backends;
using LongCtx.Cuda.Native;
using LongCtx.Cuda.Runtime;

namespace LongCtx.Cuda.Attention;

/// <summary>
/// cuDNN's fused flash attention for one device: a cuDNN handle bound to the compute stream and the SDPA
/// plans, cached by shape (a ring step reuses the same shapes in every layer; a refused shape is cached
/// too, so it is asked about once). <see cref="TryRun"/> computes a whole attention call given as
/// <see cref="AttentionBlocks"/>, or declines before queuing anything so the caller can use the kernel.
/// </summary>
internal sealed partial class CudnnAttention : IDisposable
{
    private const string Elementwise = "elementwise.cu";
    private readonly CudaDevice _device;
    private readonly nint _handle;
    private readonly Dictionary<SdpaShape, SdpaPlan?> _plans = [];

    private CudnnAttention(CudaDevice device, nint handle, long version)
    {
        _device = device;
        _handle = handle;
        Version = version;
    }

    /// <summary>cudnnGetVersion(): 91400 for 9.14.0.</summary>
    public long Version { get; }

    /// <summary>Why the last shape cuDNN declined was declined (for --verbose and the benchmark).</summary>
    public string? LastRefusal { get; private set; }

    public static string VersionText(long v) => $"{v / 10000}.{v / 100 % 100}.{v % 100}";

    /// <summary>Loads cuDNN 9 and creates a handle on the device's compute stream; null with the reason when it cannot.</summary>
    public static CudnnAttention? TryCreate(CudaDevice device, out string error)
    {
        NativeLibraries.Register();
        if (!NativeLibraries.TryLoad(NativeLibraries.Cudnn, out _, out error)) return null;
        long version = (long)Cudnn.cudnnGetVersion();
        if (version < 90000)
        {
            error = $"cuDNN {VersionText(version)} is too old: fused attention needs cuDNN 9";
            return null;
        }
        device.MakeCurrent();
        int status = Cudnn.cudnnCreate(out var handle);
        if (status != Cudnn.StatusSuccess)
        {
            error = Cudnn.Describe(status, "cudnnCreate");
            return null;
        }
        Cudnn.Check(Cudnn.cudnnSetStream(handle, device.ComputeStream), "cudnnSetStream");
        error = "";
        return new CudnnAttention(device, handle, version);
    }

    /// <summary>
    /// Queues every block of <paramref name="blocks"/> (and zeroes the empty rows) on the compute stream;
    /// false, with nothing queued, when cuDNN has no plan for one of the block shapes.
    /// </summary>
    public bool TryRun(AttentionBlocks blocks, CudnnCallPlan callPlan, CudaTensor q, CudaTensor k, CudaTensor v, CudaTensor output, CudaTensor lse, AttentionRule rule)
    {
        int heads = q.Shape[1], kvHeads = k.Shape[1], d = q.Shape[2];
        var calls = blocks.Blocks.SelectMany(b => Slices(b, callPlan.RowsFor(b.QueryCount))).ToArray();
        var plans = new SdpaPlan[calls.Length];
        for (int i = 0; i < plans.Length; i++)
        {
            var b = calls[i];
            // The graph's causal bound is bottom-right aligned; a block whose diagonal is elsewhere goes to the kernel.
            if (b.Causal && b.Diagonal is not null)
            {
                LastRefusal = $"a causal block whose last query does not see its last key ({b})";
                return false;
            }
            var shape = new SdpaShape(heads, kvHeads, d, b.QueryCount, b.KeyCount, b.Causal, callPlan.EngineConfig, Windowed: b.Window > 0, SoftCapped: rule.SoftCap is not null);
            if (Plan(shape) is not { } plan) return false;
            plans[i] = plan;
        }
        long qRow = (long)heads * d * 2, kvRow = (long)kvHeads * d * 2, lseRow = heads * 4L;
        foreach (var (start, count) in blocks.EmptyRuns)
        {
            CudaDriver.Check(CudaDriver.cuMemsetD8Async(output.Pointer + (nint)(start * qRow), 0, (nuint)(count * qRow), _device.ComputeStream), "cuMemsetD8Async");
            CudaDriver.Check(CudaDriver.cuMemsetD32Async(lse.Pointer + (nint)(start * lseRow), NegativeInfinityBits, (nuint)((long)count * heads), _device.ComputeStream),
                "cuMemsetD32Async");
        }
        var transpose = _device.Function(Elementwise, "lse_from_head_major");
        for (int i = 0; i < plans.Length; i++)
        {
            var b = calls[i];
            long statsBytes = (long)b.QueryCount * heads * 4;
            nint stats = _device.Pool.Allocate(statsBytes);
            nint workspace = plans[i].WorkspaceBytes > 0 ? _device.Pool.Allocate(plans[i].WorkspaceBytes) : 0;
            try
            {
                // Key j stays while j + (W − Shift) > query row (the band's left bound as cudnn-frontend spells it).
                plans[i].Execute(_handle, q.Pointer + (nint)(b.QueryStart * qRow), k.Pointer + (nint)(b.KeyStart * kvRow),
                    v.Pointer + (nint)(b.KeyStart * kvRow), output.Pointer + (nint)(b.QueryStart * qRow), stats, rule.Scale, workspace,
                    leftBound: b.Window - b.Shift, softCap: rule.SoftCap ?? 0f);
                long n = (long)b.QueryCount * heads;
                _device.Launch(transpose, ((uint)((n + 255) / 256), 1), 256, 0, stats, lse.Pointer + (nint)(b.QueryStart * lseRow), b.QueryCount, heads);
            }
            finally
            {
                // Stream-ordered pool: a block freed here is only reused by work queued after this point.
                _device.Pool.Free(stats, statsBytes);
                if (workspace != 0) _device.Pool.Free(workspace, plans[i].WorkspaceBytes);
            }
        }
        return true;
    }

    private const uint NegativeInfinityBits = 0xFF800000;

    /// <summary>
    /// A causal or windowed block cut into slices of at most <paramref name="maxRows"/> query rows, each over the keys
    /// its rows see: rows [a, a + n) see keys [VisibleKeys(a).Start, VisibleKeys(a + n − 1).End), on the same diagonal.
    /// A causal slice without a window keeps the bottom-right alignment (K − Q + a + n keys from the block's first).
    /// </summary>
    internal static IEnumerable<DenseBlock> Slices(DenseBlock block, int maxRows)
    {
        if (!block.Causal && block.Window == 0 || maxRows <= 0 || block.QueryCount <= maxRows)
        {
            yield return block;
            yield break;
        }
        for (int a = 0; a < block.QueryCount; a += maxRows)
        {
            int n = Math.Min(maxRows, block.QueryCount - a);
            int first = block.VisibleKeys(a).Start, end = block.VisibleKeys(a + n - 1).End;
            int shift = block.Shift + a - first;
            yield return new DenseBlock(block.QueryStart + a, n, block.KeyStart + first, end - first, block.Causal, block.Window,
                shift == end - first - n ? null : shift);
        }
    }

    private SdpaPlan? Plan(SdpaShape shape)
    {
        if (_plans.TryGetValue(shape, out var plan)) return plan;
        plan = SdpaForwardGraph.TryBuild(_handle, shape, Version, out var refusal);
        if (plan is null) LastRefusal = refusal;
        _plans[shape] = plan;
        return plan;
    }

    /// <summary>Frees the plans; the handle, like the device's streams and cuBLASLt handle, lives as long as the process.</summary>
    public void Dispose()
    {
        foreach (var p in _plans.Values) p?.Dispose();
        _plans.Clear();
    }
}
