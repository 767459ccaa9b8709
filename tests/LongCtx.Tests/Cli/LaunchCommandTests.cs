using System.Runtime.InteropServices;
using System.Text.Json;
using LongCtx.Models;
using LongCtx.Tests.Engine;
using LongCtx.Tests.Models;
using LongCtx.Tests.Parallel;

namespace LongCtx.Tests.Cli;

/// <summary>
/// Ranks as separate processes joined over TCP (`longctx launch`, the torchrun-style environment): the same
/// greedy tokens and logits as transformers, with both rings; bad launch environments fail in one line.
/// </summary>
public class LaunchCommandTests
{
    [Theory]
    [InlineData("tiny-llama3", "3", "pass-kv")]
    [InlineData("tiny-qwen2", "2", "pass-q")]
    public void ProcessesAsRanksMatchTransformers(string model, string processes, string strategy)
    {
        var reference = ReferenceModel.Named(model);
        using var dir = ModelFixtures.NewTempDir();
        File.WriteAllText(dir.File("ids.json"), JsonSerializer.Serialize(reference.InputIds));
        var r = CliRunner.Run("launch", "--nproc", processes, "--", "generate", "--model", reference.Directory, "--prompt-ids", dir.File("ids.json"),
            "--temperature", "0", "--max-new-tokens", "16", "--dump-logits", dir.File("logits.safetensors"), "--dump-last", "4", "--json",
            "--strategy", strategy);
        Assert.True(r.ExitCode == 0, r.Stderr);

        // Only rank 0 prints: one JSON object.
        using var json = JsonDocument.Parse(r.Stdout);
        var root = json.RootElement;
        Assert.Equal(reference.Greedy16, root.GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray());
        Assert.Equal(int.Parse(processes), root.GetProperty("ranks").GetInt32());
        Assert.Equal(strategy, root.GetProperty("strategy").GetString());

        using var dumped = SafetensorsFile.Open(dir.File("logits.safetensors"));
        var logits = dumped.Get("logits");
        var values = new float[logits.Length];
        Marshal.Copy(logits.Data, values, 0, values.Length);
        double error = DenseReference.RelativeError(values, reference.LogitsLast4);
        Assert.True(error < 1e-3, $"logits relative error {error:e2}");
    }

    [Fact]
    public void IncompleteLaunchEnvironmentIsOneLine()
    {
        var r = CliRunner.RunWithEnvironment(new() { ["WORLD_SIZE"] = "2", ["RANK"] = "0" },
            "generate", "--model", ReferenceModel.TinyLlama3.Directory, "--prompt-ids", "/dev/null");
        Assert.NotEqual(0, r.ExitCode);
        string line = Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("MASTER_PORT", line);
    }
}
