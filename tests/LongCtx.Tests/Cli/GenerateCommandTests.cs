using System.Text.Json;
using LongCtx.Tests.Engine;
using LongCtx.Tests.Model;

namespace LongCtx.Tests.Cli;

/// <summary>`longctx generate` end to end against the transformers reference, as the issue states it.</summary>
public class GenerateCommandTests
{
    [Theory]
    [InlineData("tiny-llama3", "1", "dense")]
    [InlineData("tiny-llama3", "4", "auto")]
    [InlineData("tiny-qwen2", "3", "pass-q")]
    public void GreedyGenerationAndDumpedLogitsMatchTransformers(string model, string ranks, string strategy)
    {
        var reference = ReferenceModel.Named(model);
        using var dir = ModelFixtures.NewTempDir();
        var (r, dump) = FixtureGeneration.Run(reference, dir, [], "--ranks", ranks, "--strategy", strategy);
        FixtureGeneration.AssertMatchesReference(r, dump, reference, int.Parse(ranks), strategy);
    }

    [Theory]
    [InlineData("tiny-llama3", "1", "dense")]
    [InlineData("tiny-qwen2", "2", "pass-q")]
    public void TensorParallelGenerationMatchesTransformers(string model, string ranks, string strategy)
    {
        var reference = ReferenceModel.Named(model);
        using var dir = ModelFixtures.NewTempDir();
        var (r, dump) = FixtureGeneration.Run(reference, dir, [], "--ranks", ranks, "--tp", "2", "--strategy", strategy);
        FixtureGeneration.AssertMatchesReference(r, dump, reference, int.Parse(ranks), strategy, tensorRanks: 2);
    }

    [Fact]
    public void ChunkedPrefillMatchesTransformers()
    {
        var reference = ReferenceModel.TinyLlama3;
        using var dir = ModelFixtures.NewTempDir();
        var (r, dump) = FixtureGeneration.Run(reference, dir, [], "--ranks", "2", "--prefill-chunk", "100", "--strategy", "auto");
        FixtureGeneration.AssertMatchesReference(r, dump, reference, 2, "auto");
    }

    [Fact]
    public void ChatReusesTheCacheBetweenTurns()
    {
        var reference = ReferenceModel.TinyLlama3;
        var turn1 = JsonSerializer.Serialize(reference.InputIds[..300]);
        var turn2 = JsonSerializer.Serialize(reference.InputIds[300..340]);
        var r = CliRunner.RunWithInput($"{turn1}\n{turn2}\n", "chat", "--model", reference.Directory, "--ids", "--json",
            "--max-new-tokens", "4", "--ranks", "3", "--strategy", "auto");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var turns = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        Assert.Equal(2, turns.Length);
        Assert.Equal(0, turns[0].GetProperty("cached_tokens").GetInt32());
        Assert.Equal(300 + 4 - 1, turns[1].GetProperty("cached_tokens").GetInt32());
        Assert.Equal(300 + 4 + 40, turns[1].GetProperty("prompt_tokens").GetInt32());
    }
}
