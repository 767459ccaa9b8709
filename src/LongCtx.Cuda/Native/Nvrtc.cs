using System.Runtime.InteropServices;

namespace LongCtx.Cuda.Native;

/// <summary>NVRTC: compiles the backend's CUDA C++ kernels for the device at first use.</summary>
internal static unsafe partial class Nvrtc
{
    private const string Lib = NativeLibraries.Nvrtc;

    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int nvrtcCreateProgram(out nint program, string source, string name, int headers, nint headerSources, nint headerNames);
    [LibraryImport(Lib)] public static partial int nvrtcCompileProgram(nint program, int count, byte** options);
    [LibraryImport(Lib)] public static partial int nvrtcGetCUBINSize(nint program, out nuint size);
    [LibraryImport(Lib)] public static partial int nvrtcGetCUBIN(nint program, byte* cubin);
    [LibraryImport(Lib)] public static partial int nvrtcGetProgramLogSize(nint program, out nuint size);
    [LibraryImport(Lib)] public static partial int nvrtcGetProgramLog(nint program, byte* log);
    [LibraryImport(Lib)] public static partial int nvrtcDestroyProgram(ref nint program);
    [LibraryImport(Lib)] public static partial int nvrtcVersion(out int major, out int minor);
    [LibraryImport(Lib)] public static partial nint nvrtcGetErrorString(int result);

    public static void Check(int status, string what)
    {
        if (status != 0) throw new LongCtxException($"{what} failed: NVRTC error {status} {Marshal.PtrToStringUTF8(nvrtcGetErrorString(status))}");
    }
}
