using System.Diagnostics;
using LongCtx.Backends;
using LongCtx.Engine;
using LongCtx.Model;
using LongCtx.Planning;
using LongCtx.Tensors;

namespace LongCtx.Cli;

/// <summary>
/// `bench --calibrate FILE`: measures the rates `plan` and `--strategy auto` need on the machine at hand, with the
/// model's shapes, on every rank at once (each with its own share of the device, as in a run), and writes them as a
/// calibration file (<see cref="CalibrationFile"/>): GEMM and attention TFLOP/s at several row counts, memory bandwidth,
/// a decode step's fixed cost a layer, and with two ranks or more the ring link's bandwidth and latency. The slowest
/// rank's figures count: it sets a ring's pace.
/// </summary>
internal static class BenchCalibration
{
    /// <param name="decodeMsPerStep">a decode step of one sequence at a short context, timed by the caller</param>
    public static DeviceProfile Measure(IRankGroup group, ModelConfig config, ModelWeights weights, double decodeMsPerStep, bool cuda)
    {
        var gemmRows = cuda ? new[] { 1024, 4096, 16384, 65536 } : [128, 512, 2048];
        var attentionRows = cuda ? new[] { 4096, 16384, 65536 } : [512, 2048];
        var messages = cuda ? new[] { 1 << 20, 16 << 20, 64 << 20 } : [16 << 10, 256 << 10, 1 << 20];
        var perRank = group.Run(rt => Rank(rt, weights, gemmRows, attentionRows, messages, cuda));

        string gemmType = weights.Layers[0].GateProj.DType == DType.F32 ? "fp32" : "bf16"; // f16 weights cost what bf16 ones do
        RateCurve Slowest(Func<RankRates, double[]> rates, int[] sizes, string what) =>
            new(sizes.Select((s, i) => ((long)s, perRank.Min(r => rates(r)[i]))), what);
        var b = group.Run(rt => rt.Backend.ActivationType.SizeOf())[0];
        double bandwidth = perRank.Min(r => r.MemoryBytesPerSecond);
        Link? ring = perRank[0].RingTimes is null ? null : FitLink(messages, perRank.Select(r => r.RingTimes!).ToArray());

        var device = new DeviceProfile(
            Name: group.Device, Source: "bench --calibrate", ActivationBytes: b,
            MemoryBytes: perRank.Min(r => r.MemoryBytes), ReservedBytes: cuda ? 2.0 * (1L << 30) : 1.0 * (1L << 30),
            MemoryBytesPerSecond: bandwidth,
            GemmFlops: new Dictionary<string, RateCurve> { [gemmType] = Slowest(r => r.Gemm, gemmRows, $"{gemmType} GEMM") },
            CausalAttentionFlops: Slowest(r => r.Causal, attentionRows, "causal attention"),
            FullAttentionFlops: Slowest(r => r.Full, attentionRows, "unmasked attention"),
            IntraNode: cuda ? ring : null, DecodeLayerSeconds: 0, RingLink: ring);
        // A decode step reads the rank's weights and (a short context's) KV once; the rest is its fixed cost a layer.
        var shape = ModelShape.Of(config, config.Source);
        var layout = new Layout(group.ContextRanks, group.TensorRanks, group.TensorRanks);
        var memory = CostModel.Memory(shape, WeightFormat.Parse(gemmType), device, layout, 0, DecodeContext, "pass-q");
        double read = (memory.Weights + memory.Kv) / bandwidth;
        return device with { DecodeLayerSeconds = Math.Max(0, (decodeMsPerStep / 1e3 - read) / config.NumLayers) };
    }

    /// <summary>The context the caller decodes at.</summary>
    public const int DecodeContext = 512;

    private sealed record RankRates(double[] Gemm, double[] Causal, double[] Full, double MemoryBytesPerSecond, double MemoryBytes, double[]? RingTimes);

    /// <summary>Writes the calibration file and says what it holds (or prints it, with --json).</summary>
    public static void Write(DeviceProfile profile, string path, bool json)
    {
        try { CalibrationFile.Write(profile, path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new LongCtxException($"--calibrate {path} cannot be written ({e.Message})"); }
        Console.WriteLine(json ? CalibrationFile.ToJson(profile).ToJsonString() : $"wrote {path}: {profile.Name}; {Summary(profile)}");
    }

    private static string Summary(DeviceProfile p) =>
        $"GEMM {string.Join(", ", p.GemmFlops.Select(kv => $"{kv.Key} {kv.Value.Points[^1].Rate / 1e12:0.###} TFLOP/s"))}, " +
        $"attention {p.FullAttentionFlops.Points[^1].Rate / 1e12:0.###} TFLOP/s, memory {p.MemoryBytesPerSecond / 1e9:0.#} GB/s" +
        (p.RingLink is { } l ? $", ring {l.BytesPerSecond / 1e9:0.####} GB/s + {l.LatencySeconds * 1e6:0} µs" : "");

    private static RankRates Rank(RankRuntime rt, ModelWeights weights, int[] gemmRows, int[] attentionRows, int[] messages, bool cuda)
    {
        var b = rt.Backend;
        int h = rt.Model.Heads, kvh = rt.Model.KvHeads, d = rt.Model.Config.HeadDim, hidden = rt.Model.Config.HiddenSize;
        using var w = b.LoadWeight(weights.Layers[0].GateProj);
        int outputs = weights.Layers[0].GateProj.Shape[0];
        var gemm = gemmRows.Select(rows =>
        {
            using var x = b.Allocate(b.ActivationType, rows, hidden);
            using var y = b.Allocate(b.ActivationType, rows, outputs);
            return 2.0 * rows * hidden * outputs / Seconds(b, y, () => b.Linear(x, w, null, y));
        }).ToArray();

        double[] Attention(bool causal) => attentionRows.Select(rows =>
        {
            using var q = b.Allocate(b.ActivationType, rows, h, d);
            using var k = b.Allocate(b.ActivationType, rows, kvh, d);
            using var v = b.Allocate(b.ActivationType, rows, kvh, d);
            using var o = b.Allocate(b.ActivationType, rows, h, d);
            using var lse = b.Allocate(DType.F32, rows, h);
            // An unmasked block is a ring step's: its keys all sit before its queries.
            var queries = new TokenLayout(new int[rows], Enumerable.Range(causal ? 0 : rows, rows).ToArray());
            var keys = new TokenLayout(new int[rows], Enumerable.Range(0, rows).ToArray());
            double flops = 4.0 * rows * rows * h * d / (causal ? 2 : 1);
            return flops / Seconds(b, lse, () => b.Attention(q, queries, k, v, keys, new AttentionRule(1f / MathF.Sqrt(d)), o, lse));
        }).ToArray();
        var causalRates = Attention(causal: true);
        var fullRates = Attention(causal: false);

        long copyBytes = cuda ? 256L << 20 : 64L << 20;
        double memoryRate;
        using (var src = b.Allocate(DType.F32, (int)(copyBytes / 4)))
        using (var dst = b.Allocate(DType.F32, (int)(copyBytes / 4)))
            memoryRate = 2.0 * copyBytes / Seconds(b, dst, () => b.Copy(src, dst));

        // A GPU's capacity is what is free now plus the weights already loaded; the CPU's, all of the process's memory.
        double capacity = cuda
            ? b.Info.AvailableMemoryBytes() + (double)rt.Model.Config.ParameterCount * weights.Layers[0].GateProj.DType.SizeOf() / (rt.TensorComm?.Size ?? 1)
            : b.Info.TotalMemoryBytes;
        return new RankRates(gemm, causalRates, fullRates, memoryRate, capacity, rt.Comm.Size > 1 ? RingTimes(rt, messages) : null);
    }

    /// <summary>One ring step's exchange (send to the next rank, receive from the previous) of each size, every rank at once: the best of three.</summary>
    private static double[] RingTimes(RankRuntime rt, int[] messages)
    {
        var b = rt.Backend;
        int next = (rt.Rank + 1) % rt.Comm.Size, prev = (rt.Rank - 1 + rt.Comm.Size) % rt.Comm.Size;
        return messages.Select(bytes =>
        {
            using var send = b.Allocate(DType.F32, bytes / 4);
            using var recv = b.Allocate(DType.F32, bytes / 4);
            double best = double.MaxValue;
            for (int i = 0; i < 4; i++)
            {
                rt.Comm.Barrier();
                var clock = Stopwatch.StartNew();
                rt.Comm.SendReceive([send], next, [recv], prev).Wait();
                Sync(b, recv); // on a GPU, Wait only orders streams
                if (i > 0) best = Math.Min(best, clock.Elapsed.TotalSeconds); // the first one warms the path up
            }
            return best;
        }).ToArray();
    }

    /// <summary>time = latency + bytes / bandwidth, least squares over the sizes, each at its slowest rank.</summary>
    private static Link FitLink(int[] messages, double[][] times)
    {
        var t = messages.Select((_, i) => times.Max(r => r[i])).ToArray();
        double mx = messages.Average(m => (double)m), my = t.Average();
        double slope = messages.Select((m, i) => (m - mx) * (t[i] - my)).Sum() / messages.Sum(m => (m - mx) * (m - mx));
        if (!(slope > 0)) slope = t[^1] / messages[^1]; // timing noise on a link too fast to tell sizes apart
        return new Link("calibrated", 1 / slope, Math.Max(0, my - slope * mx));
    }

    /// <summary>The better of two calls after a warm-up, waiting for the device each time.</summary>
    private static double Seconds(IBackend b, Tensor written, Action call)
    {
        call();
        Sync(b, written);
        double best = double.MaxValue;
        for (int i = 0; i < 2; i++)
        {
            var clock = Stopwatch.StartNew();
            call();
            Sync(b, written);
            best = Math.Min(best, clock.Elapsed.TotalSeconds);
        }
        return Math.Max(best, 1e-9);
    }

    /// <summary>Waits for an asynchronous device by reading back one row of what the call wrote (on the CPU, a copy of one row).</summary>
    private static void Sync(IBackend b, Tensor written)
    {
        var row = written.SliceRows(0, 1);
        b.Download<float>(row, new float[row.Length]);
    }
}
