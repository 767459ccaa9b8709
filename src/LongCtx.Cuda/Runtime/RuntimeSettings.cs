namespace LongCtx.Cuda.Runtime;

/// <summary>How a GPU's runtime launches, profiles, multiplies and caches (filled from the environment by <see cref="CudaSettings"/>).</summary>
public sealed record RuntimeSettings
{
    /// <summary>Kernels of a decode step launched as programmatic dependents of the one before, where the GPU has it (9.0+).</summary>
    public bool ProgrammaticLaunch { get; init; } = true;

    /// <summary>A profile charges every launch to its kernel's name and grid instead of to the categories.</summary>
    public bool ProfileByKernel { get; init; }

    /// <summary>cuBLASLt's workspace in MiB (NVIDIA's advice for Hopper; 0 allows only algorithms that need none).</summary>
    public int GemmWorkspaceMiB { get; init; } = 32;

    /// <summary>
    /// FP8 GEMMs accumulate in the tensor cores without promoting partial sums to fp32 (cuBLASLt's fast accumulation);
    /// false: promoted, as the CPU backend's float32 sums are.
    /// </summary>
    public bool Fp8FastAccumulation { get; init; }

    /// <summary>FP8 projections quantise their input in the RMSNorm kernel before them (one pass instead of two); false: apart.</summary>
    public bool Fp8FusedNorm { get; init; } = true;

    /// <summary>Where compiled kernels are kept; null: $XDG_CACHE_HOME/longctx/kernels, else ~/.cache/longctx/kernels.</summary>
    public string? KernelCache { get; init; }
}
