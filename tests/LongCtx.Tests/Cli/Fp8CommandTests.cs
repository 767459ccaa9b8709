using System.Text.Json;
using LongCtx.Tests.Quantization;

namespace LongCtx.Tests.Cli;

/// <summary>
/// `longctx generate` with FP8: <c>--quantization fp8</c> on the bf16 fixture, and FP8 checkpoints, give their references'
/// greedy tokens on several ranks, --json reports the number formats that ran, and the FP8 options' bad values are one-line errors.
/// </summary>
public class Fp8CommandTests
{
    private static CliRunner.Result Generate(Fp8Fixture f, params string[] more)
    {
        string ids = Path.Combine(Path.GetTempPath(), $"longctx-fp8-{f.Name}-ids.json");
        File.WriteAllText(ids, JsonSerializer.Serialize(f.Reference.InputIds));
        return CliRunner.Run(["generate", "--model", f.Directory, "--prompt-ids", ids, "--max-new-tokens", "16", "--json", .. more]);
    }

    [Fact]
    public void OnlineQuantisationGivesTheW8A8ReferencesTokensAndSaysSo()
    {
        var f = new Fp8Fixture("tiny-llama-bf16");
        var r = Generate(f, "--quantization", "fp8", "--ranks", "2", "--strategy", "pass-q");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var o = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal(f.Reference.Greedy16, o.GetProperty("token_ids").EnumerateArray().Select(t => t.GetInt32()));
        var dtypes = o.GetProperty("dtypes");
        Assert.Equal("fp8_e4m3 per row (fp8 (online))", dtypes.GetProperty("weights").GetString());
        Assert.Equal("f32; fp8_e4m3 inputs of the FP8 projections (fp8 per token)", dtypes.GetProperty("activations").GetString());
        Assert.Equal("f32", dtypes.GetProperty("kv_cache").GetString());
        Assert.Equal("f32", dtypes.GetProperty("attention").GetString());
    }

    [Fact]
    public void ACheckpointsSchemeIsReportedAsItRan()
    {
        var f = new Fp8Fixture("tiny-llama-fp8-fbgemm");
        var r = Generate(f, "--ranks", "4", "--strategy", "pass-kv");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var o = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal(f.Reference.Greedy16, o.GetProperty("token_ids").EnumerateArray().Select(t => t.GetInt32()));
        var dtypes = o.GetProperty("dtypes");
        Assert.Equal("fp8_e4m3 per row (fbgemm_fp8; 9 of 14 projections, the rest bf16)", dtypes.GetProperty("weights").GetString());
        Assert.Contains("fp8 per token (ub 15)", dtypes.GetProperty("activations").GetString());
        Assert.Equal("f32", dtypes.GetProperty("kv_cache").GetString());
    }

    [Theory]
    [InlineData("tiny-llama-fp8-ct-kv", "auto", "fp8_e4m3 (the checkpoint's k_scale/v_scale)")]
    [InlineData("tiny-llama-fp8-ct-kv", "bf16", "f32")]
    [InlineData("tiny-llama-fp8-block", "fp8", "fp8_e4m3 (scale 1)")]
    public void TheKvCacheIsReportedAsItRan(string model, string kv, string expected)
    {
        var f = new Fp8Fixture(model);
        var r = Generate(f, "--ranks", "2", "--strategy", "pass-kv", "--kv-cache-dtype", kv);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var o = JsonDocument.Parse(r.Stdout).RootElement;
        Assert.Equal(expected, o.GetProperty("dtypes").GetProperty("kv_cache").GetString());
        if (kv == "auto") Assert.Equal(f.Reference.Greedy16, o.GetProperty("token_ids").EnumerateArray().Select(t => t.GetInt32()));
    }

    [Theory]
    [InlineData("tiny-llama-bf16", new[] { "--quantization", "int8" }, "--quantization int8 is unknown")]
    [InlineData("tiny-llama-bf16", new[] { "--kv-cache-dtype", "fp16" }, "--kv-cache-dtype fp16 is unknown")]
    [InlineData("tiny-llama-bf16", new[] { "--attention-dtype", "fp8" }, "--attention-dtype fp8 needs --device cuda")]
    [InlineData("tiny-llama-fp8-block", new[] { "--quantization", "fp8" }, "is already quantised (fp8)")]
    [InlineData("tiny-llama-fp8-block", new[] { "--tp", "2" }, "--tensor-parallel 2 would split the fp8 checkpoint's 128-wide FP8 scale blocks")]
    public void BadFp8OptionsAreOneLine(string model, string[] options, string expected)
    {
        var r = Generate(new Fp8Fixture(model), options);
        Assert.NotEqual(0, r.ExitCode);
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, r.Stderr);
        Assert.Contains(expected, lines[0]);
    }
}
