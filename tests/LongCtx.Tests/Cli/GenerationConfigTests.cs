using System.Text.Json;
using LongCtx.Model;
using LongCtx.Tests.Engine;
using LongCtx.Tests.Model;

namespace LongCtx.Tests.Cli;

/// <summary>generation_config.json: its stop ids and sampling defaults apply unless a flag sets them; bad values are one-line errors.</summary>
public class GenerationConfigTests
{
    /// <summary>tiny-llama3 (linked) with the given generation_config.json, and the reference prompt's ids.</summary>
    private static string ModelWith(ModelFixtures.TempDir dir, string generationConfig, string? tokenizerJson = null)
    {
        string model = Path.Combine(dir.Path, "model" + Directory.GetDirectories(dir.Path).Length);
        Directory.CreateDirectory(model);
        foreach (var f in new[] { "config.json", "model.safetensors" })
            File.CreateSymbolicLink(Path.Combine(model, f), Path.Combine(ReferenceModel.TinyLlama3.Directory, f));
        File.WriteAllText(Path.Combine(model, GenerationConfig.FileName), generationConfig);
        if (tokenizerJson is not null) File.WriteAllText(Path.Combine(model, "tokenizer.json"), tokenizerJson);
        File.WriteAllText(dir.File("ids.json"), $"[{string.Join(',', ReferenceModel.TinyLlama3.InputIds[..64])}]");
        return model;
    }

    private static (int[] Tokens, string Finish) Tokens(CliRunner.Result r)
    {
        Assert.True(r.ExitCode == 0, r.Stderr);
        var root = JsonDocument.Parse(r.Stdout).RootElement;
        return (root.GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(), root.GetProperty("finish_reason").GetString()!);
    }

    [Fact]
    public void Eos_list_from_the_file_stops_generation()
    {
        using var dir = ModelFixtures.NewTempDir();
        var greedy = Tokens(CliRunner.Run("generate", "--model", ModelWith(dir, "{}"), "--prompt-ids", dir.File("ids.json"), "--max-new-tokens", "8", "--json")).Tokens;
        Assert.Equal(8, greedy.Length);

        // The first greedy token listed as an end-of-sequence id: generation stops at it.
        string stops = ModelWith(dir, $$"""{"eos_token_id": [128001, {{greedy[0]}}]}""");
        var (tokens, finish) = Tokens(CliRunner.Run("generate", "--model", stops, "--prompt-ids", dir.File("ids.json"), "--max-new-tokens", "8", "--json"));
        Assert.Equal([greedy[0]], tokens);
        Assert.Equal("stop", finish);
    }

    [Fact]
    public void File_temperature_samples_and_the_flag_overrides_it()
    {
        using var dir = ModelFixtures.NewTempDir();
        string hot = ModelWith(dir, """{"temperature": 100.0, "top_p": 1.0, "top_k": 0, "do_sample": true}""");
        string[] args = ["generate", "--model", hot, "--prompt-ids", dir.File("ids.json"), "--max-new-tokens", "8", "--seed", "3", "--json"];
        var sampled = Tokens(CliRunner.Run(args)).Tokens;
        var greedy = Tokens(CliRunner.Run([.. args, "--temperature", "0"])).Tokens;
        // At temperature 100 over 128K tokens the draws are near uniform: 8 repeats of the greedy token would be a miracle.
        Assert.NotEqual(greedy, sampled);
        Assert.Single(greedy.Distinct()); // the random tiny model's greedy reply repeats one token (fixtures/README.md)
    }

    [Fact]
    public void Eos_outside_the_vocabulary_is_a_one_line_error()
    {
        using var dir = ModelFixtures.NewTempDir();
        string model = ModelWith(dir, """{"eos_token_id": [128001, 999999]}""");
        var r = CliRunner.Run("generate", "--model", model, "--prompt-ids", dir.File("ids.json"), "--json");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal($"error: {Path.Combine(model, GenerationConfig.FileName)}: eos_token_id 999999 is outside the vocabulary (0 to 128255): fix the file or remove the id",
            r.Stderr.Trim());
    }

    [Fact]
    public void Sampling_takes_each_value_from_the_flag_then_the_file_then_the_default()
    {
        var file = new GenerationConfig([2], 0.6f, 0.9f, null);
        Assert.Equal(new LongCtx.Sampling.SamplingOptions(0.6f, 0.9f, 0, 5), file.Sampling(null, null, null, 5));
        Assert.Equal(new LongCtx.Sampling.SamplingOptions(0f, 0.5f, 7, null), file.Sampling(0f, 0.5f, 7, null));
        Assert.Equal(new LongCtx.Sampling.SamplingOptions(0f, 1f, 0, null), GenerationConfig.None.Sampling(null, null, null, null));
    }

    [Fact]
    public void Prompt_ids_run_with_a_tokenizer_that_does_not_load()
    {
        using var dir = ModelFixtures.NewTempDir();
        string model = ModelWith(dir, "{}", tokenizerJson: """{"model": {"type": "Unigram", "vocab": []}}""");
        var r = CliRunner.Run("generate", "--model", model, "--prompt-ids", dir.File("ids.json"), "--max-new-tokens", "4", "--json");
        Assert.Equal(4, Tokens(r).Tokens.Length);
        Assert.Contains("the tokenizer did not load", r.Stderr);
        // A text prompt needs it: the load error, one line, naming the file and the component.
        var text = CliRunner.Run("generate", "--model", model, "--prompt", "hi", "--json");
        Assert.Equal(1, text.ExitCode);
        Assert.Equal($"error: {Path.Combine(model, "tokenizer.json")}: model.type: model type 'Unigram' is not supported (supported: BPE, WordLevel)", text.Stderr.Trim());
    }
}
