using System.Runtime.InteropServices;

namespace LongCtx.Cuda.Native;

/// <summary>The CUDA driver API calls the backend makes (libcuda). Every status goes through <see cref="Check"/>.</summary>
internal static unsafe partial class CudaDriver
{
    private const string Lib = NativeLibraries.Cuda;

    [LibraryImport(Lib)] public static partial int cuInit(uint flags);
    [LibraryImport(Lib)] public static partial int cuDeviceGetCount(out int count);
    [LibraryImport(Lib)] public static partial int cuDeviceGet(out int device, int ordinal);
    [LibraryImport(Lib)] public static partial int cuDeviceGetAttribute(out int value, int attribute, int device);
    [LibraryImport(Lib)] public static partial int cuDeviceGetName(byte* name, int length, int device);
    [LibraryImport(Lib, EntryPoint = "cuDevicePrimaryCtxRetain")] public static partial int cuDevicePrimaryCtxRetain(out nint context, int device);
    [LibraryImport(Lib, EntryPoint = "cuDevicePrimaryCtxRelease_v2")] public static partial int cuDevicePrimaryCtxRelease(int device);
    [LibraryImport(Lib)] public static partial int cuCtxSetCurrent(nint context);
    [LibraryImport(Lib, EntryPoint = "cuMemGetInfo_v2")] public static partial int cuMemGetInfo(out nuint free, out nuint total);
    [LibraryImport(Lib, EntryPoint = "cuMemAlloc_v2")] public static partial int cuMemAlloc(out nint pointer, nuint bytes);
    [LibraryImport(Lib, EntryPoint = "cuMemFree_v2")] public static partial int cuMemFree(nint pointer);
    [LibraryImport(Lib, EntryPoint = "cuMemcpyHtoDAsync_v2")] public static partial int cuMemcpyHtoDAsync(nint destination, void* source, nuint bytes, nint stream);
    [LibraryImport(Lib, EntryPoint = "cuMemcpyDtoHAsync_v2")] public static partial int cuMemcpyDtoHAsync(void* destination, nint source, nuint bytes, nint stream);
    [LibraryImport(Lib, EntryPoint = "cuMemcpyDtoDAsync_v2")] public static partial int cuMemcpyDtoDAsync(nint destination, nint source, nuint bytes, nint stream);
    [LibraryImport(Lib)] public static partial int cuMemcpyPeerAsync(nint destination, nint destinationContext, nint source, nint sourceContext, nuint bytes, nint stream);
    [LibraryImport(Lib, EntryPoint = "cuMemsetD8Async")] public static partial int cuMemsetD8Async(nint destination, byte value, nuint count, nint stream);
    [LibraryImport(Lib, EntryPoint = "cuMemsetD32Async")] public static partial int cuMemsetD32Async(nint destination, uint value, nuint count, nint stream);
    [LibraryImport(Lib, EntryPoint = "cuMemHostAlloc")] public static partial int cuMemHostAlloc(out nint pointer, nuint bytes, uint flags);
    [LibraryImport(Lib)] public static partial int cuMemFreeHost(nint pointer);
    [LibraryImport(Lib)] public static partial int cuModuleLoadData(out nint module, void* image);
    [LibraryImport(Lib)] public static partial int cuModuleUnload(nint module);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] public static partial int cuModuleGetFunction(out nint function, nint module, string name);
    [LibraryImport(Lib)] public static partial int cuFuncSetAttribute(nint function, int attribute, int value);
    [LibraryImport(Lib)] public static partial int cuOccupancyMaxActiveBlocksPerMultiprocessor(out int blocks, nint function, int blockSize, nuint dynamicSharedBytes);
    [LibraryImport(Lib)]
    public static partial int cuLaunchKernel(nint function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ,
        uint sharedBytes, nint stream, void** parameters, void** extra);
    [LibraryImport(Lib)] public static partial int cuLaunchKernelEx(LaunchConfig* config, nint function, void** parameters, void** extra);
    /// <summary>Writes a 128-byte CUtensorMap (64-byte aligned) describing a tiled view of global memory for TMA loads.</summary>
    [LibraryImport(Lib)]
    public static partial int cuTensorMapEncodeTiled(void* tensorMap, int dataType, uint rank, nint globalAddress, ulong* globalDim, ulong* globalStrides,
        uint* boxDim, uint* elementStrides, int interleave, int swizzle, int l2Promotion, int oobFill);
    public const int TensorMapBytes = 128, TensorMapBFloat16 = 9, TensorMapSwizzle128 = 3, TensorMapL2Promotion256 = 3;
    [LibraryImport(Lib)] public static partial int cuStreamCreate(out nint stream, uint flags);
    [LibraryImport(Lib)] public static partial int cuStreamCreateWithPriority(out nint stream, uint flags, int priority);
    [LibraryImport(Lib)] public static partial int cuCtxGetStreamPriorityRange(out int least, out int greatest);
    [LibraryImport(Lib)] public static partial int cuDeviceCanAccessPeer(out int canAccess, int device, int peerDevice);
    [LibraryImport(Lib)] public static partial int cuCtxEnablePeerAccess(nint peerContext, uint flags);
    /// <summary>CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED: another user of the context (NCCL) enabled it first.</summary>
    public const int ErrorPeerAccessAlreadyEnabled = 704;
    [LibraryImport(Lib, EntryPoint = "cuStreamDestroy_v2")] public static partial int cuStreamDestroy(nint stream);
    [LibraryImport(Lib)] public static partial int cuStreamSynchronize(nint stream);
    [LibraryImport(Lib)] public static partial int cuStreamWaitEvent(nint stream, nint ev, uint flags);
    [LibraryImport(Lib)] public static partial int cuEventCreate(out nint ev, uint flags);
    [LibraryImport(Lib, EntryPoint = "cuEventDestroy_v2")] public static partial int cuEventDestroy(nint ev);
    [LibraryImport(Lib)] public static partial int cuEventRecord(nint ev, nint stream);
    [LibraryImport(Lib)] public static partial int cuEventSynchronize(nint ev);
    [LibraryImport(Lib)] public static partial int cuEventElapsedTime(out float milliseconds, nint start, nint end);
    [LibraryImport(Lib)] public static partial int cuGetErrorString(int error, out nint text);

    public const int AttributeComputeCapabilityMajor = 75, AttributeComputeCapabilityMinor = 76, AttributeMultiprocessorCount = 16;
    public const int FunctionAttributeMaxDynamicSharedBytes = 8;
    /// <summary>CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION: the launch may overlap the stream's previous kernel.</summary>
    public const int LaunchAttributeProgrammaticStreamSerialization = 6;

    /// <summary>CUlaunchConfig (cuda.h): grid, block, shared memory, stream and the attributes of one cuLaunchKernelEx.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct LaunchConfig
    {
        public uint GridX, GridY, GridZ, BlockX, BlockY, BlockZ, SharedBytes;
        public nint Stream;
        public LaunchAttribute* Attributes;
        public uint AttributeCount;
    }

    /// <summary>CUlaunchAttribute: an id, padding to 8 bytes, and a 64-byte value union whose first int is what the ids used here read.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 72)]
    public struct LaunchAttribute
    {
        public int Id;
        private int _pad;
        public int Value;
    }
    public const uint StreamNonBlocking = 1, EventDisableTiming = 2;

    public static void Check(int status, string what)
    {
        if (status == 0) return;
        string text = cuGetErrorString(status, out var p) == 0 && p != 0 ? Marshal.PtrToStringUTF8(p) ?? "" : "";
        if (status == 2) // CUDA_ERROR_OUT_OF_MEMORY
            throw new LongCtxException($"{what}: the GPU is out of memory ({text}); use more GPUs, a shorter prompt or a smaller model");
        throw new LongCtxException($"{what} failed: CUDA error {status} {text}");
    }
}
