using LongCtx.Tensors;

namespace LongCtx.Cuda;

/// <summary>
/// The choice between cuDNN's fused attention and the own kernels. Calls of a few rows go to the decode
/// kernel (CudaBackend.Decode.cs) first; cuDNN takes a call when it has at least
/// <see cref="MinimumCudnnQueries"/> query rows and its layouts decompose into dense blocks
/// (<see cref="AttentionBlocks"/>); everything else, and any shape cuDNN declines, runs the flash kernel.
/// </summary>
public sealed partial class CudaBackend
{
    private const int MinimumCudnnQueries = 128;
    private AttentionImplementation _attention;
    private CudnnAttention? _cudnn;
    private string? _cudnnUnavailable;
    private long _cudnnCalls, _kernelCalls;

    /// <summary>Switching to <see cref="AttentionImplementation.Cudnn"/> loads cuDNN at once and fails if it cannot.</summary>
    public AttentionImplementation AttentionMode
    {
        get => _attention;
        set
        {
            if (value == AttentionImplementation.Cudnn && LoadCudnn() is null)
                throw new LongCtxException($"--attention cudnn: {_cudnnUnavailable}");
            _attention = value;
        }
    }

    /// <summary>How attention blocks are cut into cuDNN calls (<see cref="CudnnCallPlan.FromEnvironment"/> at construction).</summary>
    public CudnnCallPlan CudnnCalls { get; set; } = CudnnCallPlan.FromEnvironment();

    /// <summary>The loaded cuDNN's version ("9.14.0"), or null.</summary>
    public string? CudnnVersion => _cudnn is { } c ? CudnnAttention.VersionText(c.Version) : null;

    /// <summary>Attention calls cuDNN computed so far.</summary>
    public long CudnnAttentionCalls => _cudnnCalls;

    /// <summary>Attention calls the own flash-attention kernel (Kernels/attention.cu) computed so far.</summary>
    public long KernelAttentionCalls => _kernelCalls;

    /// <summary>Why cuDNN did not run the last call it could not take (unavailable, or a shape it declined); null if none.</summary>
    public string? CudnnRefusal => _cudnnUnavailable ?? _cudnn?.LastRefusal;

    /// <summary>Which implementation the attention calls so far used, and why cuDNN did not take the others.</summary>
    public string AttentionReport()
    {
        string report = $"attention on {Name}: cuDNN {CudnnVersion ?? "not loaded"} fused SDPA for {_cudnnCalls} call(s), decode kernel for {_decodeCalls}, own kernel for {_kernelCalls}";
        if (_attention == AttentionImplementation.Kernel) return report + " (--attention kernel)";
        if (_cudnnUnavailable is not null) return report + $" (cuDNN unavailable: {_cudnnUnavailable})";
        return _cudnn?.LastRefusal is { } refusal ? report + $" (cuDNN declined: {refusal})" : report;
    }

    private bool TryCudnnAttention(CudaTensor q, TokenLayout queries, CudaTensor k, CudaTensor v, TokenLayout keys, float scale, CudaTensor output, CudaTensor lse)
    {
        // cuDNN's SDPA engines take head dimensions that are multiples of 8 up to 256, which also keeps
        // every row offset 16-byte aligned.
        int d = q.Shape[2];
        if (_attention == AttentionImplementation.Kernel || q.Rows < MinimumCudnnQueries || d % 8 != 0 || d > 256) return false;
        if (AttentionBlocks.Of(queries, keys) is not { } blocks || LoadCudnn() is not { } cudnn) return false;
        bool ran = false;
        _device.Timed("attention", () => ran = cudnn.TryRun(blocks, CudnnCalls, q, k, v, output, lse, scale));
        if (ran) _cudnnCalls++;
        return ran;
    }

    private CudnnAttention? LoadCudnn()
    {
        if (_cudnn is null && _cudnnUnavailable is null)
        {
            _cudnn = CudnnAttention.TryCreate(_device, out var error);
            if (_cudnn is null) _cudnnUnavailable = error;
        }
        return _cudnn;
    }
}
