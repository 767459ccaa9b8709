using System.Text.Json;

namespace LongCtx.Tests.Cli;

/// <summary>
/// `longctx plan` as a user runs it: the issue's command prints its table in under a second, --json carries every
/// layout's prediction, bad input fails in one line; `bench --calibrate` writes a file that plan and --strategy auto read.
/// </summary>
public class PlanCommandTests
{
    private static readonly string[] IssueCommand =
        ["plan", "--config", "llama3-405b", "--dtype", "fp8", "--gpus-per-node", "8", "--link", "rdma400", "--context", "131072,1048576"];

    /// <summary>
    /// Under a second of CPU time, process start included: the wall time on an idle machine (docs/PERFORMANCE.md, "Planning"),
    /// and what a busy one cannot inflate as it does the wall time of a test among tests running in parallel.
    /// </summary>
    [Fact]
    public void TheIssuesCommandPrintsItsTableInUnderASecond()
    {
        var result = CliRunner.Run(IssueCommand);
        Assert.True(result.ExitCode == 0, result.Stderr);
        var lines = result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        // 2 contexts x 5 node counts x TP 1, 2, 4, 8, under a title line, a header and its rule, and the legend.
        Assert.Equal(2 * 5 * 4 + 4, lines.Length);
        Assert.Contains(lines, l => l.Contains("CP16 x TP8 *") && l.Contains("1048576") && l.Contains(" yes "));
        double cpu = ChildCpuSeconds(IssueCommand);
        Assert.True(cpu < 1, $"{cpu:0.00} s of CPU");
    }

    /// <summary>User + system time of a longctx run, as bash's `times` reports its children's (.NET cannot read it after exit).</summary>
    private static double ChildCpuSeconds(string[] args)
    {
        string? cli = Environment.GetEnvironmentVariable("LONGCTX_CLI");
        var psi = new System.Diagnostics.ProcessStartInfo("bash") { RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "-c", "\"$@\" > /dev/null; times", "bash" }) psi.ArgumentList.Add(a);
        if (string.IsNullOrEmpty(cli)) { psi.ArgumentList.Add("dotnet"); psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "longctx.dll")); }
        else psi.ArgumentList.Add(cli);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = System.Diagnostics.Process.Start(psi)!;
        var lines = p.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        p.WaitForExit();
        // The second line: the children's user and system time, "0m0.230s 0m0.040s".
        return lines[1].Split(' ').Sum(t => int.Parse(t[..t.IndexOf('m')]) * 60 + double.Parse(t[(t.IndexOf('m') + 1)..^1], System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public void JsonCarriesEveryLayoutsPrediction()
    {
        var rows = Rows("plan", "--config", "llama3-70b", "--gpu", "h200", "--context", "65536", "--hit-rate", "0,0.9", "--nodes", "1,2", "--tp", "4,8", "--json");
        Assert.Equal(2 * 2 * 2, rows.Count);
        foreach (var r in rows)
        {
            double kv = r.GetProperty("pass_kv").GetProperty("ttft_s").GetDouble(), q = r.GetProperty("pass_q").GetProperty("ttft_s").GetDouble();
            Assert.True(kv > 0 && q > 0);
            Assert.Equal(kv <= q ? "pass-kv" : "pass-q", r.GetProperty("faster").GetString());
            Assert.Equal(r.GetProperty("nodes").GetInt32() * 8, r.GetProperty("context_ranks").GetInt32() * r.GetProperty("tensor_ranks").GetInt32());
            var memory = r.GetProperty("memory_bytes");
            Assert.Equal(memory.GetProperty("weights").GetDouble() + memory.GetProperty("kv").GetDouble() + memory.GetProperty("activations").GetDouble(),
                memory.GetProperty("total").GetDouble(), 2);
        }
        // A 90% hit leaves 6,554 new tokens of 65,536.
        Assert.Contains(rows, r => r.GetProperty("new_tokens").GetInt64() == 6554 && r.GetProperty("cached_tokens").GetInt64() == 58982);
    }

    [Theory]
    [InlineData("unknown model preset 'llama9'", "plan", "--config", "llama9")]
    [InlineData("--link bogus is unknown", "plan", "--config", "llama3-8b", "--link", "bogus")]
    [InlineData("--hit-rate 1 must be at least 0 and below 1", "plan", "--config", "llama3-8b", "--hit-rate", "1")]
    [InlineData("--tensor-parallel 3 cannot split", "plan", "--config", "llama3-8b", "--tp", "3")]
    [InlineData("--gpu a100 is unknown", "plan", "--config", "llama3-8b", "--gpu", "a100")]
    [InlineData("--dtype int4 is unknown", "plan", "--config", "llama3-8b", "--dtype", "int4")]
    [InlineData("--calibration /nonexistent/c.json cannot be read", "plan", "--config", "llama3-8b", "--calibration", "/nonexistent/c.json")]
    [InlineData("; write one with longctx bench --calibrate FILE", "plan", "--config", "llama3-8b", "--calibration", "/nonexistent/c.json")]
    [InlineData("give --model DIR or --config PRESET", "plan")]
    [InlineData("--context 99999999999: each number must be at most 2147483647", "plan", "--config", "llama3-8b", "--context", "99999999999")]
    [InlineData("--context 99999999999: each number must be at most 2147483647", "bench", "--device", "cpu", "--config", "tiny", "--context", "99999999999")]
    [InlineData("--context 0 must be 1 or more", "bench", "--device", "cpu", "--config", "tiny", "--context", "64,0")]
    public void BadInputFailsInOneLine(string message, params string[] args)
    {
        var r = CliRunner.Run(args);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(message, r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
    }

    /// <summary>
    /// The calibration loop on the CPU: bench measures two ranks and writes the file; plan predicts from it; a bench run
    /// with --strategy auto takes its C and BW from it (the choice's inputs are the file's, as printed).
    /// </summary>
    [Fact]
    public void BenchCalibratesWhatPlanAndAutoRead()
    {
        string dir = Directory.CreateTempSubdirectory("longctx-cal").FullName;
        try
        {
            string file = Path.Combine(dir, "cpu.json");
            var bench = CliRunner.Run("bench", "--device", "cpu", "--config", "tiny", "--ranks", "2", "--calibrate", file);
            Assert.True(bench.ExitCode == 0, bench.Stderr);
            using var cal = JsonDocument.Parse(File.ReadAllText(file));
            double ringGbps = cal.RootElement.GetProperty("ring").GetProperty("gbps").GetDouble();
            double attention = cal.RootElement.GetProperty("attention_tflops").GetProperty("full").EnumerateArray().Last()[1].GetDouble();
            Assert.True(ringGbps > 0 && attention > 0);
            Assert.Equal(4, cal.RootElement.GetProperty("activation_bytes").GetInt32());

            var plan = Rows("plan", "--config", "tiny", "--calibration", file, "--gpus-per-node", "1", "--nodes", "1,2", "--link", "calibrated", "--context", "4096", "--json");
            Assert.Equal(2, plan.Count);
            Assert.True(plan[1].GetProperty("pass_kv").GetProperty("ttft_s").GetDouble() < plan[0].GetProperty("pass_kv").GetProperty("ttft_s").GetDouble());

            // A partial prefill on a link as slow as 1 MB/s for an engine at 1 TFLOP/s: pass-Q; at 1 TB/s: pass-KV.
            foreach (var (gbps, expected) in new[] { (0.001, "pass-q"), (1000.0, "pass-kv") })
            {
                string handMade = Path.Combine(dir, $"link-{gbps}.json");
                File.WriteAllText(handMade, File.ReadAllText(file)
                    .Replace($"\"gbps\": {cal.RootElement.GetProperty("ring").GetProperty("gbps").GetRawText()}", $"\"gbps\": {gbps}")
                    .Replace("\"full\": [", "\"full\": [[1000000, 1],"));
                var point = Assert.Single(Points("bench", "--device", "cpu", "--config", "tiny", "--ranks", "2", "--context", "512", "--miss-rate", "0.05",
                    "--strategy", "auto", "--calibration", handMade, "--warmup", "0", "--json"));
                Assert.Equal(expected, point.GetProperty("strategy").GetString());
                Assert.Equal(486, point.GetProperty("cached_tokens").GetInt32());
                Assert.Contains($"C=1 TFLOP/s, BW={gbps:0.###} GB/s", point.GetProperty("auto_choice").GetString());
            }
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void AutoNeedsTheRingOfACalibrationFromOneRank()
    {
        string dir = Directory.CreateTempSubdirectory("longctx-cal").FullName;
        try
        {
            string file = Path.Combine(dir, "one.json"), ids = Path.Combine(dir, "ids.json");
            File.WriteAllText(ids, "[1, 2, 3]");
            Assert.Equal(0, CliRunner.Run("bench", "--device", "cpu", "--config", "tiny", "--calibrate", file).ExitCode);
            var r = CliRunner.Run("generate", "--config", "tiny", "--load-format", "dummy", "--ranks", "2", "--prompt-ids", ids,
                "--max-new-tokens", "1", "--calibration", file);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("has no ring link (it was written on one rank): give --link-gb-per-s", r.Stderr);
            var plan = CliRunner.Run("plan", "--config", "tiny", "--calibration", file, "--link", "nvlink");
            Assert.Equal(1, plan.ExitCode);
            Assert.Contains($"--link nvlink: calibration file {file} has no link between devices of a node", plan.Stderr);
            // With the link given, the file's attention rate completes it.
            var ok = CliRunner.Run("generate", "--config", "tiny", "--load-format", "dummy", "--ranks", "2", "--prompt-ids", ids,
                "--max-new-tokens", "1", "--calibration", file, "--link-gb-per-s", "1", "--json");
            Assert.True(ok.ExitCode == 0, ok.Stderr);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    private static List<JsonElement> Rows(params string[] args) => Json(args, "rows");

    private static List<JsonElement> Points(params string[] args) => Json(args, "points");

    private static List<JsonElement> Json(string[] args, string field)
    {
        var r = CliRunner.Run(args);
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        return doc.RootElement.GetProperty(field).EnumerateArray().Select(e => e.Clone()).ToList();
    }
}
