using LongCtx.Tests.Engine;
using LongCtx.Tests.Models;

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
        var (r, dump) = FixtureGeneration.Run(reference, dir, ["launch", "--nproc", processes, "--"], "--strategy", strategy);
        FixtureGeneration.AssertMatchesReference(r, dump, reference, int.Parse(processes), strategy);
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
