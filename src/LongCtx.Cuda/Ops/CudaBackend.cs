using System.Runtime.InteropServices;
using LongCtx.Backends;
using LongCtx.Cuda.Attention;
using LongCtx.Cuda.Native;
using LongCtx.Cuda.Runtime;
using LongCtx.Tensors;

namespace LongCtx.Cuda.Ops;

/// <summary>
/// The GPU backend: bf16 activations and weights (or FP8 weights with their scales, CudaBackend.Fp8.cs), fp32 accumulation; GEMMs through cuBLASLt, everything else
/// through the NVRTC-compiled kernels of Kernels/, attention through the paths of Attention/ (<see cref="AttentionPaths"/>).
/// Work is queued on the device's compute stream and only <see cref="Download"/> waits for it, so a layer
/// runs without host synchronisation.
/// </summary>
public sealed unsafe partial class CudaBackend : IBackend, IFusedOps, ISamplingOps, ICompressionOps, IDeviceInfo
{
    private const string Elementwise = "elementwise.cu";
    private readonly CudaDevice _device;
    private readonly DeviceLayouts _layouts;
    private readonly Dictionary<RopeTable, CudaTensor> _ropeTables = [];

    private readonly AttentionPaths _attention;
    private readonly bool _ownGemv, _fp8FusedNorm;

    /// <param name="settings">null: <see cref="CudaSettings.FromEnvironment"/></param>
    public CudaBackend(int ordinal, CudaSettings? settings = null)
    {
        settings ??= CudaSettings.FromEnvironment();
        _device = new CudaDevice(ordinal, settings.Runtime);
        _layouts = new DeviceLayouts(ints => (CudaTensor)Upload<int>(ints, ints.Length));
        _ownGemv = settings.OwnGemv;
        _fp8FusedNorm = settings.Runtime.Fp8FusedNorm;
        _attention = new AttentionPaths(_device, _layouts, settings.Attention);
    }

    /// <summary>The environment's settings with attention computed by <paramref name="attention"/>.</summary>
    public CudaBackend(int ordinal, AttentionImplementation attention) : this(ordinal, CudaSettings.FromEnvironment().With(attention)) { }

    internal CudaDevice Device => _device;
    public string Name => $"cuda:{_device.Ordinal} ({_device.Name})";
    public IDeviceInfo Info => this;
    public DType ActivationType => DType.BF16;
    public long PeakMemoryBytes => _device.Pool.PeakBytes;

    public static int DeviceCount() => CudaDevice.Count();

    public void MakeCurrent() => _device.MakeCurrent();

    public Tensor Allocate(DType dtype, params int[] shape) => _device.Allocate(dtype, shape, zeroed: true);

    // A pool block as it comes: whatever the tensor that had it last left there.
    public Tensor Scratch(DType dtype, params int[] shape) => CudaTensor.Allocate(_device.Pool, dtype, shape);

    public Tensor Upload<T>(ReadOnlySpan<T> data, params int[] shape) where T : unmanaged
    {
        if (typeof(T) == typeof(int))
        {
            var t = CudaTensor.Allocate(_device.Pool, DType.I32, shape);
            Check(t.Length == data.Length, $"{data.Length} values for {t}");
            CopyIn(t, MemoryMarshal.AsBytes(data));
            return t;
        }
        if (typeof(T) == typeof(float))
        {
            var t = CudaTensor.Allocate(_device.Pool, DType.BF16, shape);
            Check(t.Length == data.Length, $"{data.Length} values for {t}");
            var bf = new ushort[data.Length];
            BFloat16.FromFloat(MemoryMarshal.Cast<T, float>(data), bf);
            CopyIn(t, MemoryMarshal.AsBytes(bf.AsSpan()));
            return t;
        }
        throw new ArgumentException($"cannot upload {typeof(T).Name}");
    }

    public void Download<T>(Tensor source, Span<T> destination) where T : unmanaged
    {
        var s = C(source);
        Check(s.Length == destination.Length, $"{destination.Length} slots for {s}");
        if (typeof(T) == typeof(float) && s.DType == DType.BF16)
        {
            var bf = new ushort[s.Length];
            CopyOut(s, MemoryMarshal.AsBytes(bf.AsSpan()));
            BFloat16.ToFloat(bf, MemoryMarshal.Cast<T, float>(destination));
            return;
        }
        Check((typeof(T) == typeof(float) && s.DType == DType.F32) || (typeof(T) == typeof(int) && s.DType == DType.I32), $"cannot download {s} as {typeof(T).Name}");
        CopyOut(s, MemoryMarshal.AsBytes(destination));
    }

    public Tensor LoadWeight(HostTensor weight)
    {
        if (weight.DType == DType.F8E4M3) return LoadFp8Weight(weight);
        var t = CudaTensor.Allocate(_device.Pool, DType.BF16, weight.Shape);
        if (weight.DType == DType.BF16)
        {
            CopyIn(t, (void*)weight.Data, weight.Bytes);
            return t;
        }
        // F32 / F16 checkpoints are rounded to bf16 on the host, a slice at a time.
        const int chunk = 1 << 22;
        var buffer = new ushort[chunk];
        var f = new float[chunk];
        for (long start = 0; start < weight.Length; start += chunk)
        {
            int n = (int)Math.Min(chunk, weight.Length - start);
            if (weight.DType == DType.F32) new ReadOnlySpan<float>((float*)weight.Data + start, n).CopyTo(f);
            else System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>((Half*)weight.Data + start, n), f.AsSpan(0, n));
            BFloat16.FromFloat(f.AsSpan(0, n), buffer.AsSpan(0, n));
            fixed (ushort* b = buffer)
                CudaDriver.Check(CudaDriver.cuMemcpyHtoDAsync(t.Pointer + (nint)(start * 2), b, (nuint)(n * 2), _device.ComputeStream), "uploading a weight");
            _device.Synchronize();
        }
        return t;
    }

    /// <summary>A copy, or into an F8E4M3 tensor (the FP8 KV cache) the quantisation e4m3(f32(x / destination.Scale)).</summary>
    public void Copy(Tensor source, Tensor destination)
    {
        var (s, d) = (C(source), C(destination));
        if (d.DType == DType.F8E4M3 && s.DType != DType.F8E4M3) QuantizeStores([(s, d)]);
        else _device.Copy(s, d);
    }

    /// <summary>
    /// Small copies (a decode step's K and V rows of every sequence into its cache) as one kernel launched as a
    /// dependent, up to <see cref="CopyListArgument.MaxCopies"/> at a time: a cuMemcpy between two programmatic
    /// launches would make the next kernel wait for the copy's launch. Larger copies, and copies that are not whole
    /// 16-byte words on 16-byte boundaries, go through <see cref="Copy"/>.
    /// </summary>
    public void CopyEach(params ReadOnlySpan<(Tensor Source, Tensor Destination)> copies)
    {
        var list = new CopyListArgument();
        List<(CudaTensor, CudaTensor)>? stores = null;
        foreach (var (source, destination) in copies)
        {
            var (s, d) = (C(source), C(destination));
            if (d.DType == DType.F8E4M3 && s.DType != DType.F8E4M3)
            {
                (stores ??= []).Add((s, d));
                continue;
            }
            Check(s.Bytes == d.Bytes && s.DType == d.DType, $"CopyEach: {s} into {d}");
            if (s.Bytes == 0) continue;
            if (s.Bytes > SmallCopyBytes || s.Bytes % 16 != 0 || s.Pointer % 16 != 0 || d.Pointer % 16 != 0)
            {
                Copy(source, destination);
                continue;
            }
            if (list.Count == CopyListArgument.MaxCopies)
            {
                LaunchCopyList(list);
                list = new CopyListArgument();
            }
            list.Add(s.Pointer, d.Pointer, (int)(s.Bytes / 16));
        }
        if (list.Count > 0) LaunchCopyList(list);
        if (stores is not null) QuantizeStores(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(stores));
    }

    private void LaunchCopyList(CopyListArgument list)
    {
        uint blocks = (uint)CeilDiv(list.Words, 256);
        nint byValue = (nint)(&list); // the driver copies the argument at the launch
        _device.Timed(CudaDevice.Copies, () => _device.LaunchDependentWithStruct(Fn("copy_list"), (blocks, 1, 1), 256, 0, byValue));
    }

    /// <summary>The largest copy <see cref="CopyEach"/> takes into its kernel (a batch of decode rows is a few KB).</summary>
    private const long SmallCopyBytes = 1 << 20;

    public void Synchronize() => _device.Synchronize();

    /// <summary>Free on the GPU plus what the pool keeps cached. The calling thread must have the context current.</summary>
    public long AvailableMemoryBytes()
    {
        CudaDriver.Check(CudaDriver.cuMemGetInfo(out var free, out _), "cuMemGetInfo");
        return (long)free + _device.Pool.CachedBytes;
    }

    /// <summary>The GPU's memory. The calling thread must have the context current.</summary>
    public long TotalMemoryBytes
    {
        get
        {
            CudaDriver.Check(CudaDriver.cuMemGetInfo(out _, out var total), "cuMemGetInfo");
            return (long)total;
        }
    }

    /// <summary>Starts recording the time split (GEMM, attention, communication wait) of the compute stream.</summary>
    public void StartProfiling() => _device.Profiler = new StreamProfiler(_device.ComputeStream);

    /// <summary>Milliseconds per category since <see cref="StartProfiling"/>, and stops recording.</summary>
    public IReadOnlyDictionary<string, double> StopProfiling()
    {
        var totals = _device.Profiler?.Collect() ?? [];
        _device.Profiler = null;
        return totals;
    }

    public void Dispose()
    {
        foreach (var t in _ropeTables.Values) t.Dispose();
        _attention.Dispose();
        _device.Dispose();
    }

    private void Fill(CudaTensor t, float value)
    {
        var host = new float[t.Length];
        Array.Fill(host, value);
        CopyIn(t, MemoryMarshal.AsBytes(host.AsSpan()));
    }

    internal CudaTensor UploadFloats(float[] values)
    {
        var t = CudaTensor.Allocate(_device.Pool, DType.F32, [values.Length]);
        CopyIn(t, MemoryMarshal.AsBytes(values.AsSpan()));
        return t;
    }

    // Pageable host memory: the driver stages the bytes before returning, so the source may go at once.
    private void CopyIn(CudaTensor t, ReadOnlySpan<byte> bytes)
    {
        fixed (byte* p = bytes) CopyIn(t, p, bytes.Length);
    }

    private void CopyIn(CudaTensor t, void* source, long bytes)
    {
        if (bytes > 0) CudaDriver.Check(CudaDriver.cuMemcpyHtoDAsync(t.Pointer, source, (nuint)bytes, _device.ComputeStream), "cuMemcpyHtoDAsync");
    }

    private void CopyOut(CudaTensor t, Span<byte> bytes)
    {
        if (bytes.Length == 0) return;
        fixed (byte* p = bytes)
            CudaDriver.Check(CudaDriver.cuMemcpyDtoHAsync(p, t.Pointer, (nuint)bytes.Length, _device.ComputeStream), "cuMemcpyDtoHAsync");
        _device.Synchronize();
    }

    private nint Fn(string kernel) => _device.Function(Elementwise, kernel);

    private static (uint, uint) Grid(long n) => Launches.Grid(n);

    private static bool Vectorisable(long length, params ReadOnlySpan<nint> pointers) => Launches.Vectorisable(length, pointers);

    private static int CeilDiv(int a, int b) => Launches.CeilDiv(a, b);

    private static CudaTensor C(Tensor t) => t as CudaTensor ?? throw new ArgumentException($"{t} is not a CUDA tensor");

    private static void Check(bool ok, string message)
    {
        if (!ok) throw new ArgumentException(message);
    }
}
