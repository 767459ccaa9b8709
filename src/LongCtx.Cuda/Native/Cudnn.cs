using System.Runtime.InteropServices;

namespace LongCtx.Cuda.Native;

/// <summary>
/// cuDNN 9's handle calls and its backend (graph) API: descriptors are created, given attributes,
/// finalized, and an execution plan is executed with a variant pack of device pointers. The enum values
/// below are cudnn_graph.h's (cuDNN 9); the header only ever appends, so they hold for every 9.x.
/// </summary>
internal static unsafe partial class Cudnn
{
    private const string Lib = NativeLibraries.Cudnn;

    [LibraryImport(Lib)] public static partial nuint cudnnGetVersion();
    [LibraryImport(Lib)] public static partial int cudnnCreate(out nint handle);
    [LibraryImport(Lib)] public static partial int cudnnSetStream(nint handle, nint stream);
    [LibraryImport(Lib)] public static partial nint cudnnGetErrorString(int status);
    [LibraryImport(Lib)] public static partial void cudnnGetLastErrorString(byte* message, nuint maxSize);
    [LibraryImport(Lib)] public static partial int cudnnBackendCreateDescriptor(DescriptorType type, out nint descriptor);
    [LibraryImport(Lib)] public static partial int cudnnBackendDestroyDescriptor(nint descriptor);
    [LibraryImport(Lib)] public static partial int cudnnBackendFinalize(nint descriptor);
    [LibraryImport(Lib)]
    public static partial int cudnnBackendSetAttribute(nint descriptor, AttributeName name, AttributeType type, long count, void* values);
    [LibraryImport(Lib)]
    public static partial int cudnnBackendGetAttribute(nint descriptor, AttributeName name, AttributeType type, long requested, out long count, void* values);
    [LibraryImport(Lib)] public static partial int cudnnBackendExecute(nint handle, nint plan, nint variantPack);

    /// <summary>cudnnBackendDescriptorType_t (only the ones the attention graph uses).</summary>
    public enum DescriptorType
    {
        Pointwise = 0,
        EngineConfig = 3,
        EngineHeuristics = 4,
        ExecutionPlan = 5,
        OperationPointwise = 13,
        OperationGraph = 15,
        VariantPack = 16,
        Tensor = 17,
        Matmul = 18,
        OperationMatmul = 19,
        Reduction = 21,
        OperationReduction = 22,
    }

    /// <summary>cudnnBackendAttributeName_t (only the ones the attention graph uses).</summary>
    public enum AttributeName
    {
        PointwiseMode = 0,
        PointwiseMathPrecision = 1,
        PointwiseAxis = 9,
        HeuristicsMode = 200,
        HeuristicsOperationGraph = 201,
        HeuristicsResults = 202,
        ExecutionPlanHandle = 400,
        ExecutionPlanEngineConfig = 401,
        ExecutionPlanWorkspaceSize = 402,
        OperationPointwiseDescriptor = 750,
        OperationPointwiseX = 751,
        OperationPointwiseB = 752,
        OperationPointwiseY = 753,
        OperationPointwiseT = 758,
        OperationGraphHandle = 800,
        OperationGraphOps = 801,
        TensorByteAlignment = 900,
        TensorDataType = 901,
        TensorDimensions = 902,
        TensorStrides = 903,
        TensorUniqueId = 906,
        TensorIsVirtual = 907,
        TensorIsByValue = 908,
        VariantPackUniqueIds = 1000,
        VariantPackDataPointers = 1001,
        VariantPackWorkspace = 1003,
        MatmulComputeType = 1500,
        OperationMatmulA = 1520,
        OperationMatmulB = 1521,
        OperationMatmulC = 1522,
        OperationMatmulDescriptor = 1523,
        ReductionOperator = 1600,
        ReductionComputeType = 1601,
        OperationReductionX = 1610,
        OperationReductionY = 1611,
        OperationReductionDescriptor = 1612,
    }

    /// <summary>cudnnBackendAttributeType_t: how the values behind an attribute are laid out.</summary>
    public enum AttributeType
    {
        Handle = 0,
        DataType = 1,
        Boolean = 2,
        Int64 = 3,
        VoidPointer = 6,
        HeuristicsMode = 8,
        PointwiseMode = 14,
        BackendDescriptor = 15,
        ReductionOperator = 18,
    }

    /// <summary>cudnnDataType_t.</summary>
    public enum DataType
    {
        Float = 0,
        Int32 = 4,
        BFloat16 = 9,
        Boolean = 11,
        Fp8E4M3 = 12,
    }

    /// <summary>cudnnPointwiseMode_t.</summary>
    public enum PointwiseMode
    {
        Add = 0,
        Mul = 1,
        Div = 6,
        Sub = 9,
        Exp = 13,
        Log = 15,
        TanhForward = 101,
        CompareGreaterThan = 302,
        CompareGreaterEqual = 303,
        GenerateIndex = 501,
        BinarySelect = 601,
    }

    /// <summary>cudnnReduceTensorOp_t.</summary>
    public enum ReductionOperator
    {
        Add = 0,
        Max = 3,
        Amax = 4,
    }

    /// <summary>cudnnBackendHeurMode_t.</summary>
    public enum HeuristicsMode
    {
        Fallback = 2,
        A = 3,
    }

    public const int StatusSuccess = 0;

    /// <summary>"cudnnBackendFinalize failed: CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN (3001): detail".</summary>
    public static string Describe(int status, string what)
    {
        string name = Marshal.PtrToStringUTF8(cudnnGetErrorString(status)) ?? "";
        var buffer = stackalloc byte[1024];
        buffer[0] = 0;
        cudnnGetLastErrorString(buffer, 1024);
        string detail = Marshal.PtrToStringUTF8((nint)buffer)?.Trim() ?? "";
        return $"{what} failed: {name} ({status}){(detail.Length > 0 ? ": " + detail : "")}";
    }

    public static void Check(int status, string what)
    {
        if (status != StatusSuccess) throw new LongCtxException(Describe(status, what));
    }
}
