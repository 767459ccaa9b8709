using System.Runtime.InteropServices;

namespace LongCtx.Cuda.Native;

/// <summary>cuBLAS: the bf16 GEMMs with fp32 accumulation (cublasGemmEx).</summary>
internal static unsafe partial class Cublas
{
    private const string Lib = NativeLibraries.Cublas;

    [LibraryImport(Lib, EntryPoint = "cublasCreate_v2")] public static partial int cublasCreate(out nint handle);
    [LibraryImport(Lib, EntryPoint = "cublasDestroy_v2")] public static partial int cublasDestroy(nint handle);
    [LibraryImport(Lib, EntryPoint = "cublasSetStream_v2")] public static partial int cublasSetStream(nint handle, nint stream);
    [LibraryImport(Lib, EntryPoint = "cublasSetWorkspace_v2")] public static partial int cublasSetWorkspace(nint handle, nint workspace, nuint bytes);
    [LibraryImport(Lib)]
    public static partial int cublasGemmEx(nint handle, int transA, int transB, int m, int n, int k, float* alpha,
        nint a, int aType, int lda, nint b, int bType, int ldb, float* beta, nint c, int cType, int ldc, int computeType, int algo);

    public const int OpN = 0, OpT = 1, R16BF = 14, R32F = 0, Compute32F = 68, GemmDefault = -1;

    public static void Check(int status, string what)
    {
        if (status != 0) throw new LongCtxException($"{what} failed: cuBLAS status {status}");
    }
}
