using System.Text.Json;
using LongCtx.Tests.Engine;
using LongCtx.Tests.Model;

namespace LongCtx.Tests.Cli;

/// <summary>`longctx generate` with the approximate strategies reports that it is approximate and, measured, how far off.</summary>
public class ApproximateGenerateTests
{
    private static readonly ReferenceModel Reference = ReferenceModel.TinyQwen2;

    [Fact]
    public void ApbReportsItsErrorAgainstPassKv()
    {
        var root = Generate("--max-new-tokens", "2", "--ranks", "3", "--strategy", "apb", "--query-tokens", "12", "--passing-tokens", "16", "--measure-error");
        Assert.True(root.GetProperty("approximate").GetBoolean());
        Assert.Equal("apb", root.GetProperty("strategy").GetString());
        Assert.Equal(12, root.GetProperty("query_tokens").GetInt32());
        Assert.Equal(16, root.GetProperty("passing_tokens").GetInt32());
        // Blocks of about 500 tokens passing 16 entries: APB drops most of what later blocks would see.
        double error = root.GetProperty("logits_relative_error").GetDouble();
        Assert.True(error > 1e-3, $"APB passing 16 of about 500 entries is within {error:e2} of exact attention");
        Assert.Contains(root.GetProperty("top1_agrees").ValueKind, new[] { JsonValueKind.True, JsonValueKind.False });
        // Balanced blocks: rank 0, with no anchor copy and no passing block, takes the longest.
        var blocks = Blocks(root);
        Assert.Equal(Reference.InputIds.Length - 12, blocks.Sum());
        Assert.True(blocks.Length == 3 && blocks[0] > blocks[1] && blocks[1] >= blocks[2], $"blocks [{string.Join(", ", blocks)}]");
    }

    /// <summary>A passing block as long as every block makes APB exact: the error it reports is float rounding.</summary>
    [Fact]
    public void ApbPassingWholeBlocksReportsNoError()
    {
        var root = Generate("--max-new-tokens", "1", "--ranks", "3", "--strategy", "apb", "--query-tokens", "12", "--passing-tokens", "2000", "--measure-error");
        double error = root.GetProperty("logits_relative_error").GetDouble();
        Assert.True(error < 1e-4, $"APB passing whole blocks is {error:e2} from exact attention");
        Assert.True(root.GetProperty("top1_agrees").GetBoolean());
    }

    [Fact]
    public void EvenBlocksSplitTheDocumentEqually()
    {
        var blocks = Blocks(Generate("--max-new-tokens", "1", "--ranks", "3", "--strategy", "star", "--query-tokens", "10", "--even-blocks"));
        Assert.Equal(Reference.InputIds.Length - 10, blocks.Sum());
        Assert.True(blocks.Length == 3 && blocks.Max() - blocks.Min() <= 1, $"blocks [{string.Join(", ", blocks)}]");
    }

    [Fact]
    public void AutoStaysExactWithoutAllowApproximate()
    {
        string[] options = ["--max-new-tokens", "1", "--ranks", "2", "--strategy", "auto", "--compute-tflops", "1", "--link-gb-per-s", "1"];
        var exact = Generate(options);
        Assert.False(exact.GetProperty("approximate").GetBoolean());
        // The CPU backend caches float32 KV: 4 bytes an element in the heuristic.
        Assert.Contains(" e=4 ", exact.GetProperty("strategy_inputs").GetString());
        var approximate = Generate([.. options, "--allow-approximate"]);
        Assert.True(approximate.GetProperty("approximate").GetBoolean());
        Assert.Equal("apb", approximate.GetProperty("strategy").GetString());
    }

    /// <summary>--link-gbps, the option's old name, still takes gigabytes per second, with a note naming the new one.</summary>
    [Fact]
    public void OldLinkOptionNameStillWorksWithANote()
    {
        using var dir = ModelFixtures.NewTempDir();
        File.WriteAllText(dir.File("ids.json"), JsonSerializer.Serialize(Reference.InputIds));
        var r = CliRunner.Run(["generate", "--model", Reference.Directory, "--prompt-ids", dir.File("ids.json"), "--max-new-tokens", "1", "--ranks", "2",
            "--compute-tflops", "1", "--link-gbps", "1", "--json"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("--link-gbps is now --link-gb-per-s", r.Stderr);
        Assert.Contains("BW=1 GB/s", JsonDocument.Parse(r.Stdout).RootElement.GetProperty("strategy_inputs").GetString());
    }

    /// <summary>`generate --json` on the tiny Qwen2 fixture's prompt ids with <paramref name="options"/>, which must succeed.</summary>
    private static JsonElement Generate(params string[] options)
    {
        using var dir = ModelFixtures.NewTempDir();
        File.WriteAllText(dir.File("ids.json"), JsonSerializer.Serialize(Reference.InputIds));
        var r = CliRunner.Run(["generate", "--model", Reference.Directory, "--prompt-ids", dir.File("ids.json"), .. options, "--json"]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return JsonDocument.Parse(r.Stdout).RootElement.Clone();
    }

    private static int[] Blocks(JsonElement root) => root.GetProperty("block_tokens").EnumerateArray().Select(b => b.GetInt32()).ToArray();
}
