namespace LongCtx.Cuda.Attention;

/// <summary>
/// Which code computes a GPU's attention calls (<see cref="AttentionPaths"/>): the implementation asked for, and the
/// variants of the own kernels the GPU machine compares (filled from the environment by <see cref="CudaSettings"/>).
/// </summary>
public sealed record AttentionSettings
{
    public AttentionImplementation Implementation { get; init; } = AttentionImplementation.Auto;

    /// <summary>The own kernel takes Hopper's wgmma at head dim 128 on sm_90; false: the mma.sync kernel for all.</summary>
    public bool Wgmma { get; init; } = true;

    /// <summary>Decode attention takes the tensor-core kernel where it applies; false: the CUDA-core kernel for all.</summary>
    public bool DecodeMma { get; init; } = true;

    /// <summary>Chunks in each warp ring of the tensor-core decode kernel; null: <see cref="DecodeAttention.DecodeMmaStages"/>.</summary>
    public int? DecodeMmaStages { get; init; }

    /// <summary>
    /// Prefill attention in FP8 (<c>--attention-dtype fp8</c>): Q, K and V as e4m3 with per-tensor scales through cuDNN's
    /// FP8 fused SDPA. Decode-sized calls stay bf16.
    /// </summary>
    public bool Fp8 { get; init; }

    /// <summary>How attention blocks are cut into cuDNN calls.</summary>
    public CudnnCallPlan CudnnCalls { get; init; } = CudnnCallPlan.Default;
}
