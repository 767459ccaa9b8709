using LongCtx.Cuda.Runtime;

namespace LongCtx.Cuda.Attention;

/// <summary>
/// cuDNN's fused attention as a path: takes a call when it has at least <see cref="MinimumQueries"/> query rows and
/// its layouts decompose into dense blocks (<see cref="AttentionBlocks"/>), unless the settings ask for the kernel;
/// declines any shape cuDNN has no plan for. cuDNN is loaded at the first call that could use it.
/// </summary>
internal sealed class CudnnPath(CudaDevice device) : IAttentionPath
{
    private const int MinimumQueries = 128;
    private CudnnAttention? _cudnn;
    private string? _unavailable;

    public long Calls { get; private set; }

    /// <summary>Of <see cref="Calls"/>, those cuDNN's FP8 SDPA computed (<see cref="AttentionSettings.Fp8"/>).</summary>
    public long Fp8Calls { get; private set; }

    /// <summary>Why the FP8 engines declined the last call they could not take; null if none did.</summary>
    public string? Fp8Refusal { get; private set; }

    /// <summary>The loaded cuDNN's version ("9.14.0"), or null.</summary>
    public string? Version => _cudnn is { } c ? CudnnAttention.VersionText(c.Version) : null;

    /// <summary>Why cuDNN cannot be loaded; null while it can, or has not been tried.</summary>
    public string? Unavailable => _unavailable;

    /// <summary>Why cuDNN did not run the last call it could not take (unavailable, or a shape it declined); null if none.</summary>
    public string? Refusal => _unavailable ?? _cudnn?.LastRefusal;

    public bool TryRun(in AttentionCall call, AttentionSettings settings)
    {
        // cuDNN's SDPA engines take head dimensions that are multiples of 8 up to 256, which also keeps
        // every row offset 16-byte aligned.
        int d = call.Q.Shape[2];
        if (settings.Implementation == AttentionImplementation.Kernel || call.Q.Rows < MinimumQueries || d % 8 != 0 || d > 256) return false;
        if (AttentionBlocks.Of(call.Queries, call.Keys, call.Rule.Window) is not { } blocks || Load() is not { } cudnn) return false;
        bool ran = false, fp8 = false;
        var c = call;
        // FP8 where asked (the FP8 cache's codes go to it as they are); bf16 where its engines decline, unless the cache is FP8.
        // The FP8 graph has neither a sliding window's band nor a soft cap: such layers are declined as the engines decline.
        if (settings.Fp8 || c.K.DType == Tensors.DType.F8E4M3)
        {
            if (!settings.Fp8) return false;
            if (c.Rule.Window is not null || c.Rule.SoftCap is not null) Fp8Refusal = $"a layer of {c.Rule} (the FP8 graph has no window or soft cap)";
            else
            {
                device.Timed("attention", () => fp8 = cudnn.TryRunFp8(blocks, settings.CudnnCalls, c.Q, c.K, c.V, c.Output, c.Lse, c.Rule.Scale));
                if (!fp8) Fp8Refusal = cudnn.LastRefusal;
            }
            if (!fp8 && c.K.DType == Tensors.DType.F8E4M3) return false;
        }
        if (!fp8) device.Timed("attention", () => ran = cudnn.TryRun(blocks, settings.CudnnCalls, c.Q, c.K, c.V, c.Output, c.Lse, c.Rule));
        if (fp8 || ran) Calls++;
        if (fp8) Fp8Calls++;
        return fp8 || ran;
    }

    /// <summary>cuDNN, loaded on first need; null when it cannot be (<see cref="Unavailable"/> says why).</summary>
    public CudnnAttention? Load()
    {
        if (_cudnn is null && _unavailable is null)
        {
            _cudnn = CudnnAttention.TryCreate(device, out var error);
            if (_cudnn is null) _unavailable = error;
        }
        return _cudnn;
    }

    public void Dispose() => _cudnn?.Dispose();
}
