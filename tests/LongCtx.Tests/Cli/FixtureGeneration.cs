using System.Runtime.InteropServices;
using System.Text.Json;
using LongCtx.Model;
using LongCtx.Tests.ContextParallel;
using LongCtx.Tests.Engine;
using LongCtx.Tests.Model;

namespace LongCtx.Tests.Cli;

/// <summary>
/// The end-to-end check of `longctx generate`: the reference prompt ids, 16 greedy tokens, the last 4
/// positions' logits dumped — and what the output must then hold against the transformers reference.
/// </summary>
internal static class FixtureGeneration
{
    /// <summary>Runs `longctx [before...] generate ... [options...]` on the reference's prompt; returns the result and the dump's path.</summary>
    public static (CliRunner.Result Result, string Dump) Run(ReferenceModel reference, ModelFixtures.TempDir dir, string[] before, params string[] options)
    {
        // Written out, not serialized: reflection-based JSON is off in the trimmed GPU test runner.
        File.WriteAllText(dir.File("ids.json"), $"[{string.Join(',', reference.InputIds)}]");
        string dump = dir.File("logits.safetensors");
        string[] generate = ["generate", "--model", reference.Directory, "--prompt-ids", dir.File("ids.json"), "--temperature", "0",
            "--max-new-tokens", "16", "--dump-logits", dump, "--dump-last", "4", "--json"];
        return (CliRunner.Run([.. before, .. generate, .. options]), dump);
    }

    /// <summary>
    /// Exactly the reference's greedy tokens, the JSON fields the issue names, and logits within the fixture's
    /// tolerance (<paramref name="bf16"/>: a CUDA run's).
    /// </summary>
    public static void AssertMatchesReference(CliRunner.Result r, string dump, ReferenceModel reference, int ranks, string strategy, bool bf16 = false,
        int tensorRanks = 1)
    {
        Assert.True(r.ExitCode == 0, r.Stderr);
        using var json = JsonDocument.Parse(r.Stdout); // one object: in a multi-process run only rank 0 prints
        var root = json.RootElement;
        Assert.Equal(reference.Greedy16, root.GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray());
        Assert.Equal(reference.InputIds.Length, root.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(ranks, root.GetProperty("ranks").GetInt32());
        Assert.Equal(tensorRanks, root.GetProperty("tensor_parallel").GetInt32());
        Assert.True(root.GetProperty("ttft_ms").GetDouble() > 0);
        Assert.True(root.TryGetProperty("decode_ms_per_token", out _));
        if (strategy == "auto") Assert.Contains(root.GetProperty("strategy_chosen").GetString(), new[] { "pass-kv", "pass-q" });
        else Assert.Equal(strategy, root.GetProperty("strategy").GetString());

        using var dumped = SafetensorsFile.Open(dump);
        var logits = dumped.Get("logits");
        Assert.Equal([4, reference.Config.VocabSize], logits.Shape);
        var values = new float[logits.Length];
        Marshal.Copy(logits.Data, values, 0, values.Length);
        double error = DenseReference.RelativeError(values, reference.LogitsLast4);
        double tolerance = bf16 ? reference.Bf16LogitsTolerance : reference.LogitsTolerance;
        Assert.True(error < tolerance, $"logits relative error {error:e2}, more than {tolerance:e1}");
    }
}
