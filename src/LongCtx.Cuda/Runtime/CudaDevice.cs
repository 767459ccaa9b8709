using LongCtx.Cuda.Native;
using LongCtx.Tensors;

namespace LongCtx.Cuda.Runtime;

/// <summary>
/// One GPU as a rank uses it: its primary context, a compute stream and a communication stream (NCCL
/// transfers run on the second so ring steps overlap attention; events order the two), cuBLASLt's GEMM plans on
/// the compute stream, the memory pool and the compiled kernels. A thread must <see cref="MakeCurrent"/>
/// before issuing work.
/// </summary>
internal sealed unsafe class CudaDevice : IDisposable
{
    private readonly Dictionary<string, nint> _functions = [];

    private readonly RuntimeSettings _settings;

    public CudaDevice(int ordinal, RuntimeSettings settings)
    {
        _settings = settings;
        NativeLibraries.Register();
        CudaDriver.Check(CudaDriver.cuInit(0), "cuInit");
        int count = Count();
        if (ordinal >= count) throw new SettingException(Setting.Gpus, $"GPU {ordinal} was asked for but this machine has {count}");
        Ordinal = ordinal;
        CudaDriver.Check(CudaDriver.cuDeviceGet(out int device, ordinal), "cuDeviceGet");
        Handle = device;
        CudaDriver.Check(CudaDriver.cuDevicePrimaryCtxRetain(out var context, device), "cuDevicePrimaryCtxRetain");
        Context = context;
        MakeCurrent();
        CudaDriver.Check(CudaDriver.cuDeviceGetAttribute(out int major, CudaDriver.AttributeComputeCapabilityMajor, device), "cuDeviceGetAttribute");
        CudaDriver.Check(CudaDriver.cuDeviceGetAttribute(out int minor, CudaDriver.AttributeComputeCapabilityMinor, device), "cuDeviceGetAttribute");
        if (major < 8) throw new LongCtxException($"GPU {ordinal} has compute capability {major}.{minor}; the CUDA backend needs 8.0 or newer (bf16 tensor cores)");
        ComputeMajor = major;
        ComputeMinor = minor;
        CudaDriver.Check(CudaDriver.cuDeviceGetAttribute(out int multiprocessors, CudaDriver.AttributeMultiprocessorCount, device), "cuDeviceGetAttribute");
        MultiprocessorCount = multiprocessors;
        var name = stackalloc byte[256];
        CudaDriver.Check(CudaDriver.cuDeviceGetName(name, 256, device), "cuDeviceGetName");
        Name = new string((sbyte*)name);
        CudaDriver.Check(CudaDriver.cuStreamCreate(out var compute, CudaDriver.StreamNonBlocking), "cuStreamCreate");
        // The communication stream at the highest priority: NCCL's transfer kernels get the next free SM slots ahead of
        // the attention blocks still queued on the compute stream, so a ring step's transfer does not wait for them.
        CudaDriver.Check(CudaDriver.cuCtxGetStreamPriorityRange(out _, out int highest), "cuCtxGetStreamPriorityRange");
        CudaDriver.Check(CudaDriver.cuStreamCreateWithPriority(out var comm, CudaDriver.StreamNonBlocking, highest), "cuStreamCreateWithPriority");
        ComputeStream = compute;
        CommStream = comm;
        Gemms = new GemmPlans(compute, settings.GemmWorkspaceMiB, settings.Fp8FastAccumulation);
        Pool = new DeviceMemoryPool();
    }

    public int Ordinal { get; }
    public string Name { get; }
    public int ComputeMajor { get; }
    public int ComputeMinor { get; }
    /// <summary>Streaming multiprocessors (132 on an H100 SXM): kernels that would leave some idle size their grids by it.</summary>
    public int MultiprocessorCount { get; }
    public nint Context { get; }
    /// <summary>The device's ordinal as the driver numbers it (cuDeviceGet).</summary>
    public int Handle { get; }
    public nint ComputeStream { get; }
    public nint CommStream { get; }
    /// <summary>The GEMMs, through cuBLASLt on the compute stream.</summary>
    public GemmPlans Gemms { get; }
    public DeviceMemoryPool Pool { get; }
    /// <summary>Set while a benchmark wants the time split; null otherwise (no events recorded).</summary>
    public StreamProfiler? Profiler { get; set; }

    /// <summary>The category of kernels launched outside any <see cref="Timed"/> span: norms, RoPE, SwiGLU, adds, embedding.</summary>
    public const string OtherKernels = "kernels";
    private int _timedDepth;

    private readonly Dictionary<nint, string> _kernelNames = [];

    /// <summary>The category of device-to-device copies (a decode step's KV appends).</summary>
    public const string Copies = "copy";

    /// <summary>Runs <paramref name="work"/>, charging its stream time to <paramref name="category"/> when profiling.</summary>
    public void Timed(string category, Action work)
    {
        // By kernel, the launches inside charge themselves.
        if (Profiler is not { } p || (_settings.ProfileByKernel && category != Copies))
        {
            work();
            return;
        }
        var start = p.Begin();
        _timedDepth++;
        try { work(); }
        finally { _timedDepth--; }
        p.End(category, start);
    }

    public static int Count()
    {
        NativeLibraries.Register();
        int status = CudaDriver.cuInit(0);
        if (status == 100) return 0; // CUDA_ERROR_NO_DEVICE
        CudaDriver.Check(status, "cuInit");
        CudaDriver.Check(CudaDriver.cuDeviceGetCount(out int n), "cuDeviceGetCount");
        return n;
    }

    public void MakeCurrent() => CudaDriver.Check(CudaDriver.cuCtxSetCurrent(Context), "cuCtxSetCurrent");

    /// <summary>A kernel of an embedded source file, compiled for this device with the given defines.</summary>
    public nint Function(string resource, string kernel, params string[] defines)
    {
        string key = $"{resource}|{kernel}|{string.Join(',', defines)}";
        lock (_functions)
        {
            if (_functions.TryGetValue(key, out var f)) return f;
            var cubin = KernelCompiler.Cubin(resource, ComputeMajor, ComputeMinor, defines, _settings.KernelCache);
            nint module;
            fixed (byte* image = cubin) CudaDriver.Check(CudaDriver.cuModuleLoadData(out module, image), $"loading {resource}");
            CudaDriver.Check(CudaDriver.cuModuleGetFunction(out f, module, kernel), $"finding kernel {kernel}");
            _functions[key] = f;
            _kernelNames[f] = kernel;
            return f;
        }
    }

    /// <summary>Lets a kernel use more than the default 48 KB of dynamic shared memory.</summary>
    public static void AllowSharedMemory(nint function, uint bytes)
    {
        if (bytes > 48 * 1024)
            CudaDriver.Check(CudaDriver.cuFuncSetAttribute(function, CudaDriver.FunctionAttributeMaxDynamicSharedBytes, (int)bytes), "cuFuncSetAttribute");
    }

    /// <summary>How many blocks of <paramref name="function"/> one SM holds at once (registers, shared memory, threads).</summary>
    public static int ResidentBlocksPerMultiprocessor(nint function, int blockSize, uint sharedBytes)
    {
        CudaDriver.Check(CudaDriver.cuOccupancyMaxActiveBlocksPerMultiprocessor(out int blocks, function, blockSize, sharedBytes), "cuOccupancyMaxActiveBlocksPerMultiprocessor");
        return blocks;
    }

    /// <summary>Launches on the compute stream; arguments are blittable values (pointers as nint).</summary>
    public void Launch(nint function, (uint X, uint Y) grid, uint block, uint sharedBytes, params ReadOnlySpan<KernelArg> args) =>
        Launch(function, (grid.X, grid.Y, 1u), block, sharedBytes, args);

    public void Launch(nint function, (uint X, uint Y, uint Z) grid, uint block, uint sharedBytes, params ReadOnlySpan<KernelArg> args) =>
        Launch(function, grid, block, sharedBytes, dependent: false, args);

    /// <summary>
    /// Launches a kernel that waits for the stream's previous kernel itself (griddepcontrol.wait, Kernels/pdl.cuh)
    /// before it reads anything that kernel wrote, so on Hopper its blocks may start while the previous grid's
    /// last blocks still run (programmatic dependent launch): the launch latency and the ramp of one kernel hide
    /// behind the tail of the one before. A decode step is ~400 short kernels. Elsewhere: a plain launch.
    /// </summary>
    public void LaunchDependent(nint function, (uint X, uint Y) grid, uint block, uint sharedBytes, params ReadOnlySpan<KernelArg> args) =>
        Launch(function, (grid.X, grid.Y, 1u), block, sharedBytes, dependent: ProgrammaticLaunch, args);

    public void LaunchDependent(nint function, (uint X, uint Y, uint Z) grid, uint block, uint sharedBytes, params ReadOnlySpan<KernelArg> args) =>
        Launch(function, grid, block, sharedBytes, dependent: ProgrammaticLaunch, args);

    /// <summary>Whether the dependent launches (<c>LaunchDependent</c>) let kernels overlap.</summary>
    public bool ProgrammaticLaunch => _programmaticLaunch ??= ComputeMajor >= 9 && _settings.ProgrammaticLaunch;

    private bool? _programmaticLaunch;

    /// <summary>
    /// Launches a kernel whose first parameters are tensor maps (<see cref="CudaDriver.TensorMapBytes"/> each, passed by
    /// value: <paramref name="tensorMaps"/> points at them), then <paramref name="args"/>.
    /// </summary>
    public void LaunchWithTensorMaps(nint function, (uint X, uint Y, uint Z) grid, uint block, uint sharedBytes, ReadOnlySpan<nint> tensorMaps, params ReadOnlySpan<KernelArg> args) =>
        Launch(function, grid, block, sharedBytes, dependent: false, args, tensorMaps);

    /// <summary>
    /// A dependent launch (<c>LaunchDependent</c>) of a kernel
    /// whose first parameter is a struct passed by value (<paramref name="parameter"/> points at its bytes, which the
    /// driver copies at the call), then <paramref name="args"/>.
    /// </summary>
    public void LaunchDependentWithStruct(nint function, (uint X, uint Y, uint Z) grid, uint block, uint sharedBytes, nint parameter, params ReadOnlySpan<KernelArg> args) =>
        Launch(function, grid, block, sharedBytes, dependent: ProgrammaticLaunch, args, [parameter]);

    private void Launch(nint function, (uint X, uint Y, uint Z) grid, uint block, uint sharedBytes, bool dependent, ReadOnlySpan<KernelArg> args, ReadOnlySpan<nint> byValue = default)
    {
        // Profiling: a launch no category claims is charged to OtherKernels, so what stays unclaimed is host gaps.
        nint start = Profiler is { } p && (_timedDepth == 0 || _settings.ProfileByKernel) ? p.Begin() : 0;
        var slots = stackalloc long[args.Length];
        int count = byValue.Length + args.Length;
        var pointers = stackalloc void*[count];
        for (int i = 0; i < byValue.Length; i++) pointers[i] = (void*)byValue[i];
        for (int i = 0; i < args.Length; i++)
        {
            slots[i] = args[i].Bits;
            pointers[byValue.Length + i] = &slots[i];
        }
        if (dependent)
        {
            var attribute = new CudaDriver.LaunchAttribute { Id = CudaDriver.LaunchAttributeProgrammaticStreamSerialization, Value = 1 };
            var config = new CudaDriver.LaunchConfig
            {
                GridX = grid.X, GridY = grid.Y, GridZ = grid.Z, BlockX = block, BlockY = 1, BlockZ = 1, SharedBytes = sharedBytes,
                Stream = ComputeStream, Attributes = &attribute, AttributeCount = 1,
            };
            CudaDriver.Check(CudaDriver.cuLaunchKernelEx(&config, function, pointers, null), "cuLaunchKernelEx");
        }
        else CudaDriver.Check(CudaDriver.cuLaunchKernel(function, grid.X, grid.Y, grid.Z, block, 1, 1, sharedBytes, ComputeStream, pointers, null), "cuLaunchKernel");
        if (start != 0) Profiler!.End(_settings.ProfileByKernel ? $"{_kernelNames.GetValueOrDefault(function, "?")} {grid.X}x{grid.Y}x{grid.Z}" : OtherKernels, start);
    }

    /// <summary>A tensor from the pool, zero-filled on the compute stream when asked (else whatever the block held).</summary>
    public CudaTensor Allocate(DType dtype, int[] shape, bool zeroed)
    {
        var t = CudaTensor.Allocate(Pool, dtype, shape);
        if (zeroed && t.Bytes > 0) CudaDriver.Check(CudaDriver.cuMemsetD8Async(t.Pointer, 0, (nuint)t.Bytes, ComputeStream), "cuMemsetD8Async");
        return t;
    }

    /// <summary>destination = source on the compute stream (same bytes and element type).</summary>
    public void Copy(CudaTensor source, CudaTensor destination)
    {
        if (source.Bytes != destination.Bytes || source.DType != destination.DType) throw new ArgumentException($"Copy: {source} into {destination}");
        if (source.Bytes > 0) Timed(Copies, () => CudaDriver.Check(CudaDriver.cuMemcpyDtoDAsync(destination.Pointer, source.Pointer, (nuint)source.Bytes, ComputeStream), "cuMemcpyDtoDAsync"));
    }

    public void Synchronize() => CudaDriver.Check(CudaDriver.cuStreamSynchronize(ComputeStream), "cuStreamSynchronize");

    /// <summary>Makes <paramref name="waiter"/> wait for everything issued so far on <paramref name="signaller"/>.</summary>
    public static void Order(nint signaller, nint waiter)
    {
        CudaDriver.Check(CudaDriver.cuEventCreate(out var ev, CudaDriver.EventDisableTiming), "cuEventCreate");
        CudaDriver.Check(CudaDriver.cuEventRecord(ev, signaller), "cuEventRecord");
        CudaDriver.Check(CudaDriver.cuStreamWaitEvent(waiter, ev, 0), "cuStreamWaitEvent");
        CudaDriver.cuEventDestroy(ev); // released by the driver once the wait is satisfied
    }

    /// <summary>
    /// Gives the device memory back. Streams, modules and the cuBLASLt handle live as long as the process
    /// (a handful of small objects in the primary context): tearing them down in the middle of a run
    /// crashed inside libcuda on the GPU machine, and nothing is gained by it.
    /// </summary>
    public void Dispose()
    {
        MakeCurrent();
        Synchronize();
        Pool.Dispose();
    }
}

/// <summary>One kernel argument as the 8 bytes cuLaunchKernel reads from (ints and floats use the low 4).</summary>
internal readonly struct KernelArg
{
    public readonly long Bits;
    private KernelArg(long bits) => Bits = bits;
    public static implicit operator KernelArg(nint p) => new(p);
    public static implicit operator KernelArg(long v) => new(v);
    public static implicit operator KernelArg(int v) => new((uint)v);
    public static implicit operator KernelArg(float v) => new((uint)BitConverter.SingleToInt32Bits(v));
}
