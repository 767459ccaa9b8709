using LongCtx.Cuda.Attention;
using LongCtx.Cuda.Runtime;

namespace LongCtx.Cuda;

/// <summary>
/// Everything the CUDA backend lets its user switch, and the one place that reads the LONGCTX_* environment variables
/// behind those switches (the GPU machine compares variants with them; README lists them). A bad value is one error
/// naming the variable and the values it takes.
/// </summary>
public sealed record CudaSettings
{
    public const string FlashWgmmaVariable = "LONGCTX_FLASH_WGMMA";
    public const string DecodeMmaVariable = "LONGCTX_DECODE_MMA";
    public const string DecodeMmaStagesVariable = "LONGCTX_DECODE_MMA_STAGES";
    public const string CudnnCallsVariable = "LONGCTX_CUDNN_CALLS";
    public const string GemvVariable = "LONGCTX_GEMV";
    public const string ProgrammaticLaunchVariable = "LONGCTX_PDL";
    public const string ProfileByKernelVariable = "LONGCTX_PROFILE_BY_KERNEL";
    public const string GemmWorkspaceVariable = "LONGCTX_GEMM_WORKSPACE_MB";
    public const string KernelCacheVariable = "LONGCTX_KERNEL_CACHE";
    public const string RingTransfersVariable = "LONGCTX_RING_TRANSFERS";
    public const string Fp8FastAccumulationVariable = "LONGCTX_FP8_FAST_ACCUM";
    public const string Fp8FusedNormVariable = "LONGCTX_FP8_FUSED_NORM";

    public AttentionSettings Attention { get; init; } = new();
    public RuntimeSettings Runtime { get; init; } = new();

    /// <summary>GEMMs of up to 16 rows through the own GEMV kernels; false: cuBLASLt for all.</summary>
    public bool OwnGemv { get; init; } = true;

    /// <summary>Ranks with a GPU each, in one process, pass ring blocks by copy engine (<see cref="Comm.CopyEngineRing"/>), not NCCL.</summary>
    public bool CopyEngineRing { get; init; }

    /// <summary>The defaults with what the environment overrides.</summary>
    public static CudaSettings FromEnvironment() => FromVariables(Environment.GetEnvironmentVariable);

    /// <summary>The defaults with what <paramref name="variable"/> gives for the LONGCTX_* names (null or empty: unset).</summary>
    public static CudaSettings FromVariables(Func<string, string?> variable)
    {
        string? Value(string name) => variable(name) is { Length: > 0 } v ? v : null;
        bool Switch(string name, bool byDefault, string on, string off) => Value(name) switch
        {
            null => byDefault,
            "1" => true,
            "0" => false,
            var text => throw new LongCtxException($"{name}={text}: give 1 ({on}) or 0 ({off})"),
        };
        var attention = new AttentionSettings
        {
            Wgmma = Switch(FlashWgmmaVariable, true, "the default, the wgmma attention kernel at head dim 128 on Hopper", "the mma.sync kernel for all"),
            DecodeMma = Switch(DecodeMmaVariable, true, "the default, the tensor-core decode kernel where it applies", "the CUDA-core kernel for all"),
            DecodeMmaStages = Value(DecodeMmaStagesVariable) switch
            {
                null => null,
                var text when int.TryParse(text, out int n) && n is >= 2 and <= 8 => n,
                var text => throw new LongCtxException($"{DecodeMmaStagesVariable}={text}: give 2 to 8 chunks per warp ring (as shared memory allows: up to 6 at head dim 128)"),
            },
            CudnnCalls = Value(CudnnCallsVariable) is { } calls ? CudnnCallPlan.Parse(calls, CudnnCallsVariable) : CudnnCallPlan.Default,
        };
        var runtime = new RuntimeSettings
        {
            ProgrammaticLaunch = Switch(ProgrammaticLaunchVariable, true, "the default: kernels overlap the previous one's tail on Hopper", "one after another"),
            ProfileByKernel = Value(ProfileByKernelVariable) == "1",
            GemmWorkspaceMiB = Value(GemmWorkspaceVariable) switch
            {
                null => 32,
                var text when int.TryParse(text, out int mib) && mib is >= 0 and <= 4096 => mib,
                var text => throw new LongCtxException($"{GemmWorkspaceVariable}={text}: give the cuBLASLt workspace in MiB, 0 to 4096"),
            },
            KernelCache = Value(KernelCacheVariable),
            Fp8FastAccumulation = Switch(Fp8FastAccumulationVariable, false, "FP8 GEMMs accumulate without promoting to fp32", "the default: promoted"),
            Fp8FusedNorm = Switch(Fp8FusedNormVariable, true, "the default: RMSNorm quantises the FP8 projections' input", "norm, then quantisation"),
        };
        return new CudaSettings
        {
            Attention = attention,
            Runtime = runtime,
            OwnGemv = Switch(GemvVariable, true, "the default, own kernels for GEMMs of up to 16 rows", "cuBLASLt for all"),
            CopyEngineRing = Value(RingTransfersVariable) switch
            {
                null or "nccl" => false,
                "copy" => true,
                var text => throw new LongCtxException($"{RingTransfersVariable}={text}: give nccl (the default: NCCL's send/receive kernels) or copy (the GPUs' copy engines)"),
            },
        };
    }

    /// <summary>These settings with attention computed by <paramref name="implementation"/>.</summary>
    public CudaSettings With(AttentionImplementation implementation) => this with { Attention = Attention with { Implementation = implementation } };
}
