using System.Runtime.InteropServices;

namespace LongCtx.Cuda.Native;

/// <summary>
/// cuBLASLt: the bf16 and FP8 GEMMs with fp32 accumulation, as a matmul descriptor, three matrix layouts and an algorithm
/// chosen by its heuristics (GemmPlans caches them by shape). Enum values are cublasLt.h's (CUDA 12 and 13 agree; the FP8
/// scale modes are CUDA 12.9's and 13's).
/// </summary>
internal static unsafe partial class CublasLt
{
    private const string Lib = NativeLibraries.CublasLt;

    [LibraryImport(Lib)] public static partial int cublasLtCreate(out nint handle);
    [LibraryImport(Lib)] public static partial int cublasLtMatmulDescCreate(out nint desc, int computeType, int scaleType);
    [LibraryImport(Lib)] public static partial int cublasLtMatmulDescDestroy(nint desc);
    [LibraryImport(Lib)] public static partial int cublasLtMatmulDescSetAttribute(nint desc, int attribute, void* value, nuint bytes);
    [LibraryImport(Lib)] public static partial int cublasLtMatrixLayoutCreate(out nint layout, int type, ulong rows, ulong cols, long ld);
    [LibraryImport(Lib)] public static partial int cublasLtMatrixLayoutDestroy(nint layout);
    [LibraryImport(Lib)] public static partial int cublasLtMatmulPreferenceCreate(out nint preference);
    [LibraryImport(Lib)] public static partial int cublasLtMatmulPreferenceDestroy(nint preference);
    [LibraryImport(Lib)] public static partial int cublasLtMatmulPreferenceSetAttribute(nint preference, int attribute, void* value, nuint bytes);
    [LibraryImport(Lib)]
    public static partial int cublasLtMatmulAlgoGetHeuristic(nint handle, nint desc, nint a, nint b, nint c, nint d, nint preference,
        int requested, HeuristicResult* results, out int returned);
    [LibraryImport(Lib)]
    public static partial int cublasLtMatmul(nint handle, nint desc, float* alpha, nint a, nint aLayout, nint b, nint bLayout, float* beta,
        nint c, nint cLayout, nint d, nint dLayout, Algorithm* algo, nint workspace, nuint workspaceBytes, nint stream);

    /// <summary>cublasLtMatmulAlgo_t: opaque, 8 words.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Algorithm
    {
        public fixed ulong Data[8];
    }

    /// <summary>cublasLtMatmulHeuristicResult_t.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct HeuristicResult
    {
        public Algorithm Algo;
        public nuint WorkspaceSize;
        public int State;
        public float WavesCount;
        public fixed int Reserved[4];
    }

    public const int OpN = 0, OpT = 1, R16BF = 14, R32F = 0, R8FE4M3 = 28, Compute32F = 68;
    // cublasLtMatmulDescAttributes_t
    public const int DescTransA = 3, DescTransB = 4, DescEpilogue = 7, DescBiasPointer = 8, DescBiasDataType = 26;
    // The FP8 GEMMs' scales (CUDA 12.9 and later): pointers to device floats, and how they apply (cublasLtMatmulMatrixScale_t).
    public const int DescAScalePointer = 17, DescBScalePointer = 18, DescFastAccum = 25, DescAScaleMode = 31, DescBScaleMode = 32;
    public const int ScaleOuterVector = 3, ScaleVector128 = 4, ScaleBlock128x128 = 5;
    // cublasLtEpilogue_t
    public const int EpilogueDefault = 1, EpilogueBias = 4;
    // cublasLtMatmulPreferenceAttributes_t
    public const int PreferenceMaxWorkspace = 1, PreferenceAlignmentA = 5, PreferenceAlignmentB = 6, PreferenceAlignmentC = 7, PreferenceAlignmentD = 8;

    // cublasStatus_t: what the heuristics answer for a combination this cuBLASLt or GPU lacks.
    public const int StatusNotSupported = 15;

    public static void Check(int status, string what)
    {
        if (status != 0) throw new LongCtxException($"{what} failed: cuBLASLt status {status}");
    }
}
