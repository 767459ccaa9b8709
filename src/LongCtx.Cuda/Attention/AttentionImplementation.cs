namespace LongCtx.Cuda.Attention;

/// <summary>Which code computes attention on a GPU.</summary>
public enum AttentionImplementation
{
    /// <summary>cuDNN's fused SDPA where the library loads and the call decomposes into dense blocks; the own kernel otherwise.</summary>
    Auto,
    /// <summary>As <see cref="Auto"/>, but a cuDNN that cannot be loaded is an error instead of a silent fallback.</summary>
    Cudnn,
    /// <summary>Always the own flash-attention kernel (Kernels/attention.cu).</summary>
    Kernel,
}
