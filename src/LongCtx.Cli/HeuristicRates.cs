using System.CommandLine;
using LongCtx.ContextParallel;
using LongCtx.Planning;

namespace LongCtx.Cli;

/// <summary>
/// Where `--strategy auto` takes its attention rate C and ring bandwidth BW from: --compute-tflops and --link-gb-per-s
/// first, then a calibration file (bench --calibrate) for what they leave out; with neither, the engine measures both
/// at its first automatic choice.
/// </summary>
internal static class HeuristicRates
{
    public static Option<string?> CreateOption() =>
        new("--calibration") { Description = "calibration file written by bench --calibrate: --strategy auto takes its attention rate and ring link from it" };

    public static HardwareRates? Resolve(double? tflops, double? gbps, string? calibration)
    {
        if (tflops is { } t && !(t > 0 && double.IsFinite(t))) throw new LongCtxException($"--compute-tflops {t} must be a positive number");
        if (gbps is { } g && !(g > 0 && double.IsFinite(g))) throw new LongCtxException($"--link-gb-per-s {g} must be a positive number");
        double? c = tflops * 1e12, bw = gbps * 1e9;
        if (calibration is not null)
        {
            var device = CalibrationFile.Read(calibration);
            var (fileC, fileBw) = device.HeuristicRates();
            c ??= fileC;
            bw ??= fileBw ?? throw new LongCtxException(
                $"--calibration {calibration} has no ring link (it was written on one rank): give --link-gb-per-s, or calibrate on 2 ranks or more");
        }
        if ((c is null) != (bw is null)) throw new LongCtxException("give both --compute-tflops and --link-gb-per-s, or neither (then they are measured)");
        return c is null ? null : new HardwareRates(c.Value, bw!.Value);
    }
}
