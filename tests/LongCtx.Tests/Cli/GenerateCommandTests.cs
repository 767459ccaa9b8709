using System.Runtime.InteropServices;
using System.Text.Json;
using LongCtx.Models;
using LongCtx.Tests.Engine;
using LongCtx.Tests.Models;
using LongCtx.Tests.Parallel;

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
        File.WriteAllText(dir.File("ids.json"), JsonSerializer.Serialize(reference.InputIds));
        var r = CliRunner.Run("generate", "--model", reference.Directory, "--prompt-ids", dir.File("ids.json"), "--temperature", "0",
            "--max-new-tokens", "16", "--dump-logits", dir.File("logits.safetensors"), "--dump-last", "4", "--json",
            "--ranks", ranks, "--strategy", strategy);
        Assert.True(r.ExitCode == 0, r.Stderr);

        using var json = JsonDocument.Parse(r.Stdout);
        var root = json.RootElement;
        var tokens = root.GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(reference.Greedy16, tokens);
        Assert.Equal(reference.InputIds.Length, root.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(int.Parse(ranks), root.GetProperty("ranks").GetInt32());
        Assert.True(root.GetProperty("ttft_ms").GetDouble() > 0);
        Assert.True(root.TryGetProperty("decode_ms_per_token", out _));
        if (strategy == "auto") Assert.Contains(root.GetProperty("strategy_chosen").GetString(), new[] { "pass-kv", "pass-q" });
        else Assert.Equal(strategy, root.GetProperty("strategy").GetString());

        using var dumped = SafetensorsFile.Open(dir.File("logits.safetensors"));
        var logits = dumped.Get("logits");
        Assert.Equal([4, reference.Config.VocabSize], logits.Shape);
        var values = new float[logits.Length];
        Marshal.Copy(logits.Data, values, 0, values.Length);
        Assert.True(DenseReference.RelativeError(values, reference.LogitsLast4) < 1e-3);
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
