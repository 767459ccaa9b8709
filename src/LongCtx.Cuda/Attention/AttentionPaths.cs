using LongCtx.Backends;
using LongCtx.Cuda.Runtime;

namespace LongCtx.Cuda.Attention;

/// <summary>
/// A GPU's attention paths, tried in turn for each call as the settings allow: the decode kernels for a few query rows
/// (own kernels, taken whatever the implementation), cuDNN's fused SDPA for long calls that decompose into dense blocks,
/// and the own flash kernel for everything else.
/// </summary>
internal sealed class AttentionPaths : IDisposable
{
    private AttentionSettings _settings;

    public AttentionPaths(CudaDevice device, DeviceLayouts layouts, AttentionSettings settings)
    {
        Decode = new DecodeAttention(device);
        Cudnn = new CudnnPath(device);
        Flash = new FlashAttention(device, layouts);
        Settings = _settings = settings;
    }

    public DecodeAttention Decode { get; }
    public CudnnPath Cudnn { get; }
    public FlashAttention Flash { get; }

    /// <summary>Asking for <see cref="AttentionImplementation.Cudnn"/> loads cuDNN at once and fails if it cannot.</summary>
    public AttentionSettings Settings
    {
        get => _settings;
        set
        {
            if (value.Implementation == AttentionImplementation.Cudnn && Cudnn.Load() is null)
                throw new SettingException(Setting.Attention, $": {Cudnn.Unavailable}", "cudnn");
            _settings = value;
        }
    }

    public void Run(in AttentionCall call)
    {
        if (Decode.TryRun(call, _settings) || Cudnn.TryRun(call, _settings)) return;
        Flash.TryRun(call, _settings);
    }

    /// <summary>The decode kernels' run of parts from <paramref name="first"/> on (<see cref="DecodeAttention.TryRunEach"/>).</summary>
    public int RunDecodeParts(CudaTensor q, CudaTensor output, CudaTensor lse, AttentionRule rule, ReadOnlySpan<AttentionPart> parts, int first) =>
        Decode.TryRunEach(q, output, lse, rule, parts, first, _settings);

    /// <summary>Which path computed the calls so far, and why cuDNN did not take the others.</summary>
    public string Report(string device)
    {
        string report = $"attention on {device}: cuDNN {Cudnn.Version ?? "not loaded"} fused SDPA for {Cudnn.Calls} call(s), decode kernel for {Decode.Calls}, own kernel for {Flash.Calls}";
        if (_settings.Fp8) report += $"; FP8 (cuDNN's FP8 SDPA) for {Cudnn.Fp8Calls} of them" + (Cudnn.Fp8Refusal is { } why ? $" (the FP8 engines declined: {why})" : "");
        if (_settings.Implementation == AttentionImplementation.Kernel) return report + " (kernel asked for)";
        if (Cudnn.Unavailable is { } unavailable) return report + $" (cuDNN unavailable: {unavailable})";
        return Cudnn.Refusal is { } refusal ? report + $" (cuDNN declined: {refusal})" : report;
    }

    public void Dispose()
    {
        Decode.Dispose();
        Cudnn.Dispose();
        Flash.Dispose();
    }
}
