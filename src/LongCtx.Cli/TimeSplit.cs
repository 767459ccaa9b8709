using LongCtx.Engine;

namespace LongCtx.Cli;

/// <summary>
/// Where a profiled prefill and its decode steps spend rank 0's compute stream: GEMMs, attention, waiting for
/// communication, the other kernels (norms, RoPE, SwiGLU, adds), device-to-device copies, and "other", the wall time no
/// category claims (host gaps between launches, memsets). With LONGCTX_PROFILE_BY_KERNEL=1 every kernel is its own
/// category.
/// </summary>
internal sealed class TimeSplit(IRankGroup gpu)
{
    private IReadOnlyDictionary<string, double>? _prefill;

    public void Start() => gpu.Run(rt => { rt.Backend.Info.StartProfiling(); return 0; });

    /// <summary>Closes the prefill's span (decode, if any, starts its own).</summary>
    public void EndPrefill() => _prefill = Stop();

    /// <summary>The prefill's split in ms, with "other" and "total" from its wall time.</summary>
    public Dictionary<string, double> PrefillSplit(double wallMs) => WithOther(_prefill ?? new Dictionary<string, double>(), wallMs);

    /// <summary>The decode span's split per step, with "other" and "total" from a step's wall time.</summary>
    public Dictionary<string, double> DecodeSplit(double wallMsPerStep, int steps) =>
        WithOther(Stop().ToDictionary(kv => kv.Key, kv => kv.Value / steps), wallMsPerStep);

    private IReadOnlyDictionary<string, double> Stop() => gpu.Run(rt => rt.Backend.Info.StopProfiling())[0];

    private static Dictionary<string, double> WithOther(IReadOnlyDictionary<string, double> split, double wallMs)
    {
        var result = new Dictionary<string, double>(split);
        result["other"] = Math.Max(0, wallMs - split.Values.Sum());
        result["total"] = wallMs;
        return result;
    }
}
