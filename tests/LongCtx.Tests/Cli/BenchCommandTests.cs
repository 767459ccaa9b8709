using System.Text.Json;
using LongCtx.Cli;

namespace LongCtx.Tests.Cli;

/// <summary>
/// `longctx bench` on the CPU: batched decode reports ms per step and per token; tensor parallelism splits each
/// --gpus count into context × tensor ranks; --one-rank-of runs rank 0 of N alone; bad batch options fail in one line.
/// </summary>
public class BenchCommandTests
{
    [Fact]
    public void BatchedDecodeReportsStepAndTokenTimes()
    {
        var points = Points("--context", "40", "--gpus", "1,2", "--decode-steps", "3", "--batch", "3");
        Assert.Equal(2, points.Count);
        foreach (var p in points)
        {
            Assert.Equal(3, p.GetProperty("batch").GetInt32());
            double step = p.GetProperty("decode_ms_per_step").GetDouble(), token = p.GetProperty("decode_ms_per_token").GetDouble();
            Assert.True(step > 0);
            Assert.Equal(step / 3, token, 0.002);
        }
    }

    [Fact]
    public void TensorParallelSplitsEachRankCount()
    {
        var points = Points("--context", "48", "--gpus", "2,4", "--tp", "2", "--strategy", "pass-kv");
        Assert.Equal([1, 2], points.Select(p => p.GetProperty("ranks").GetInt32()));
        Assert.All(points, p => Assert.Equal(2, p.GetProperty("tensor_parallel").GetInt32()));
        Assert.Equal(1.0, points[0].GetProperty("parallel_efficiency").GetDouble());
    }

    /// <summary>
    /// An approximate point carries its error against exact attention (clear of zero when the passing block is short,
    /// rounding when it covers every block) and each rank's block: balanced by default, equal on request.
    /// </summary>
    [Fact]
    public void ApbReportsItsErrorAndBlocks()
    {
        (int[] Blocks, double Error) Run(params string[] extra)
        {
            var p = Assert.Single(Points(["--context", "96", "--gpus", "3", "--strategy", "apb", .. extra]));
            Assert.Equal(JsonValueKind.Null, p.GetProperty("model_tflops").ValueKind); // no exact FLOPs to count
            return (p.GetProperty("block_tokens").EnumerateArray().Select(b => b.GetInt32()).ToArray(), p.GetProperty("logits_relative_error").GetDouble());
        }
        // A 96-token prompt: its query is the last 6 (T/16), the document the other 90; l_p defaults to block/8 = 3.
        var (balanced, error) = Run();
        Assert.True(balanced.Sum() == 90 && balanced[0] > balanced[2], $"balanced [{string.Join(", ", balanced)}]");
        Assert.True(error > 1e-3, $"APB passing 3 entries of blocks of about 30 is within {error:e2} of exact attention");
        var (even, evenError) = Run("--even-blocks", "--passing-tokens", "30");
        Assert.Equal([30, 30, 30], even);
        Assert.True(evenError < 1e-4, $"APB passing whole blocks is {evenError:e2} from exact attention");
    }

    /// <summary>
    /// A rank timed alone is reported as the N ranks it stands for and labelled a projection without communication, its
    /// efficiency an upper bound of at most 100%; rank 0 of one is a real one-rank run.
    /// </summary>
    [Fact]
    public void OneRankOfIsLabelledAProjection()
    {
        var points = Points("--context", "64", "--one-rank-of", "1,4", "--strategy", "pass-kv", "--decode-steps", "2");
        Assert.Equal([1, 4], points.Select(p => p.GetProperty("ranks").GetInt32()));
        Assert.All(points, p => Assert.True(p.GetProperty("decode_ms_per_step").GetDouble() > 0));
        Assert.Equal(1.0, points[0].GetProperty("parallel_efficiency").GetDouble());
        Assert.False(points[0].TryGetProperty("projection", out _));
        Assert.Contains("without communication", points[1].GetProperty("projection").GetString());
        Assert.Equal(0, points[1].GetProperty("timed_rank").GetInt32());
        Assert.False(points[1].TryGetProperty("parallel_efficiency", out _));
        double bound = points[1].GetProperty("parallel_efficiency_at_most").GetDouble();
        Assert.True(bound > 0 && bound <= 1, $"efficiency bound {bound}");

        var table = CliRunner.Run("bench", "--device", "cpu", "--config", "tiny", "--context", "64", "--one-rank-of", "1,2", "--strategy", "pass-kv");
        Assert.True(table.ExitCode == 0, table.Stderr);
        Assert.Contains("rank 0 of 2", table.Stdout);
        Assert.Contains("a projection of the N-GPU run without communication", table.Stdout);
    }

    /// <summary>APB's one rank alone is its last, which attends to every passing block; an approximate point has no FLOP/s.</summary>
    [Fact]
    public void OneRankOfApbTimesTheLastRank()
    {
        var p = Assert.Single(Points("--context", "96", "--one-rank-of", "3", "--strategy", "apb"));
        Assert.Equal(2, p.GetProperty("timed_rank").GetInt32());
        Assert.Equal(JsonValueKind.Null, p.GetProperty("model_tflops").ValueKind);
        Assert.Equal(JsonValueKind.Null, p.GetProperty("mfu").ValueKind);
    }

    [Theory]
    [InlineData("cuda x1 (NVIDIA H100 80GB HBM3)", "H100 SXM", 989.4)]
    [InlineData("cuda x2 (NVIDIA H100 PCIe)", "H100 PCIe", 756.5)]
    [InlineData("NVIDIA H100 NVL", "H100 NVL", 835.5)]
    [InlineData("cuda x1 (NVIDIA H200)", "H200 SXM", 989.4)]
    [InlineData("NVIDIA H200 NVL", "H200 NVL", 835.5)]
    [InlineData("NVIDIA H20", "H20", 148)]
    [InlineData("NVIDIA A100-SXM4-80GB", "A100", 312)]
    [InlineData("NVIDIA A100 80GB PCIe", "A100", 312)]
    [InlineData("NVIDIA L40S", "L40S", 362.05)]
    [InlineData("NVIDIA B200", "B200", 2250)]
    public void PeakIsLookedUpByProduct(string device, string product, double tflops)
    {
        var peak = PeakFlops.DenseBf16(device);
        Assert.NotNull(peak);
        Assert.Equal(product, peak.Value.Product);
        Assert.Equal(tflops * 1e12, peak.Value.FlopsPerSecond, 1e6);
    }

    [Theory]
    [InlineData("NVIDIA GH200 480GB")]
    [InlineData("NVIDIA H800")]
    [InlineData("NVIDIA GeForce RTX 4090")]
    [InlineData("NVIDIA RTX 6000 Ada Generation")]
    public void PeakOfAnotherDeviceIsUnknown(string device) => Assert.Null(PeakFlops.DenseBf16(device));

    [Theory]
    [InlineData("--gpus", "2")]
    [InlineData("--ranks", "2")]
    [InlineData("--tp", "2")]
    public void OneRankOfRunsOnOneGpu(string option, string value)
    {
        var r = CliRunner.Run("bench", "--device", "cpu", "--config", "tiny", "--context", "48", "--one-rank-of", "4", "--strategy", "pass-kv", option, value);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("--one-rank-of runs one rank on one GPU", Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
    }

    [Fact]
    public void OneRankOfNeedsAStrategy()
    {
        var r = CliRunner.Run("bench", "--device", "cpu", "--config", "tiny", "--context", "48", "--one-rank-of", "4");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("--one-rank-of needs a --strategy", Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
    }

    [Fact]
    public void TensorParallelMustDivideTheRankCounts()
    {
        var r = CliRunner.Run("bench", "--device", "cpu", "--config", "tiny", "--context", "48", "--gpus", "2,3", "--tp", "2");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("--tensor-parallel 2 must divide every --gpus count (3 does not)", Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
    }

    [Theory]
    [InlineData("0", "3", "--batch 0")]
    [InlineData("2", "0", "--decode-steps")]
    public void BadBatchIsOneLine(string batch, string steps, string named)
    {
        var r = CliRunner.Run("bench", "--device", "cpu", "--config", "tiny", "--context", "40", "--batch", batch, "--decode-steps", steps);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains(named, Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
    }

    /// <summary>
    /// Under `longctx launch` each process is one CPU rank over TCP (as the slow-link sweep runs them); with --miss-rate the
    /// context's first tokens are cached first and only the rest is timed; several strategies run at each point in turn.
    /// </summary>
    [Fact]
    public void ProcessRanksTimePartialPrefillsOfEachStrategy()
    {
        var r = CliRunner.Run("launch", "--nproc", "2", "--", "bench", "--device", "cpu", "--config", "tiny", "--context", "256", "--miss-rate", "0.25,1",
            "--strategy", "pass-kv,pass-q", "--warmup", "0", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var json = JsonDocument.Parse(r.Stdout);
        Assert.Contains("processes", json.RootElement.GetProperty("device").GetString());
        var points = json.RootElement.GetProperty("points").EnumerateArray().ToList();
        Assert.Equal(["pass-kv", "pass-q", "pass-kv", "pass-q"], points.Select(p => p.GetProperty("strategy").GetString()));
        Assert.All(points, p => Assert.Equal(2, p.GetProperty("ranks").GetInt32()));
        Assert.Equal([192, 192, 0, 0], points.Select(p => p.TryGetProperty("cached_tokens", out var c) ? c.GetInt32() : 0));
    }

    [Fact]
    public void MissRatesMustLeaveNewTokens()
    {
        var r = CliRunner.Run("bench", "--device", "cpu", "--config", "tiny", "--context", "48", "--miss-rate", "0.001");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("--miss-rate leaves no new token of --context 48", Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
    }

    /// <summary>The "points" of `bench --device cpu --config tiny ... --json`, which must succeed.</summary>
    /// <summary>
    /// --error-vs-bf16 reports, at the first context only, the FP8 run's last logits against the bf16 model's on the same
    /// prompt: clear of zero and within what e4m3's 3-bit mantissa gives on the tiny dummy model (measured 8.8% with FP8
    /// weights, 3.3% with an FP8 KV cache), the same on one rank and on two with pass-q (exact rings), and for 2 x 2
    /// ranks (o and down quantised per slice) within the same bounds.
    /// </summary>
    [Fact]
    public void ErrorVsBf16ComparesTheFp8RunWithTheBf16Model()
    {
        (double Error, JsonElement Later) Run(params string[] extra)
        {
            var points = Points(["--context", "64,128", "--error-vs-bf16", .. extra]);
            Assert.Equal(2, points.Count);
            return (points[0].GetProperty("logits_relative_error").GetDouble(), points[1]);
        }
        var (weights, later) = Run("--quantization", "fp8");
        Assert.True(weights > 1e-2 && weights < 0.3, $"FP8 weights against bf16: {weights:e2}");
        Assert.False(later.TryGetProperty("logits_relative_error", out var e) && e.ValueKind != JsonValueKind.Null, "measured at the first context only");
        var (ring, _) = Run("--quantization", "fp8", "--ranks", "2", "--strategy", "pass-q");
        Assert.True(Math.Abs(ring - weights) < 1e-4 * weights, $"pass-q on 2 ranks {ring:e4} against one rank {weights:e4}");
        var (tensor, _) = Run("--quantization", "fp8", "--ranks", "2", "--tp", "2");
        Assert.True(tensor > 1e-2 && tensor < 0.3, $"FP8 weights on 2 x 2 ranks against bf16: {tensor:e2}");
        var (kv, _) = Run("--kv-cache-dtype", "fp8");
        Assert.True(kv > 1e-3 && kv < weights, $"an FP8 KV cache against bf16: {kv:e2} (FP8 weights: {weights:e2})");
    }

    private static List<JsonElement> Points(params string[] options)
    {
        var r = CliRunner.Run(["bench", "--device", "cpu", "--config", "tiny", .. options, "--json"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var json = JsonDocument.Parse(r.Stdout);
        return json.RootElement.GetProperty("points").EnumerateArray().Select(p => p.Clone()).ToList();
    }
}
