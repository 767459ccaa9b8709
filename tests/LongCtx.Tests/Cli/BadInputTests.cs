using LongCtx.Tests.Engine;
using LongCtx.Tests.Model;

namespace LongCtx.Tests.Cli;

/// <summary>Bad input gets one line on stderr that names the thing, a non-zero exit, and nothing half-written.</summary>
public class BadInputTests
{
    private static readonly string Model = ReferenceModel.TinyLlama3.Directory;

    /// <summary>A copy of tiny-llama3 with one file replaced, for breaking it.</summary>
    private static ModelFixtures.TempDir CopyModel(Action<string> breakIt)
    {
        var dir = ModelFixtures.NewTempDir();
        foreach (var f in new[] { "config.json", "model.safetensors" }) File.Copy(Path.Combine(Model, f), dir.File(f));
        breakIt(dir.Path);
        return dir;
    }

    private static void AssertOneLineError(CliRunner.Result r, params string[] mentions)
    {
        Assert.NotEqual(0, r.ExitCode);
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one line, got:\n{r.Stderr}");
        foreach (var m in mentions) Assert.Contains(m, lines[0]);
        Assert.DoesNotContain("   at ", r.Stderr); // no stack trace
    }

    private static CliRunner.Result Generate(string model, params string[] more) =>
        CliRunner.Run(["generate", "--model", model, "--prompt-ids", IdsFile(), "--max-new-tokens", "2", "--json", .. more]);

    private static string IdsFile()
    {
        string path = Path.Combine(Path.GetTempPath(), "longctx-bad-input-ids.json");
        File.WriteAllText(path, "[128000, 791, 4062, 14198]");
        return path;
    }

    [Fact]
    public void MissingModelDirectory() => AssertOneLineError(Generate("/nonexistent/model"), "/nonexistent/model");

    [Fact]
    public void TruncatedSafetensors()
    {
        using var dir = CopyModel(d =>
        {
            using var f = File.Open(Path.Combine(d, "model.safetensors"), FileMode.Open);
            f.SetLength(f.Length / 2);
        });
        AssertOneLineError(Generate(dir.Path), "model.safetensors");
    }

    [Fact]
    public void TensorWithTheWrongShape()
    {
        // Claim 1 KV head: k_proj should then be [16, 64], but the file holds [32, 64].
        using var dir = CopyModel(d => Edit(d, "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 1"));
        AssertOneLineError(Generate(dir.Path), "k_proj", "shape");
    }

    [Fact]
    public void UnknownArchitecture()
    {
        using var dir = CopyModel(d => Edit(d, "\"model_type\": \"llama\"", "\"model_type\": \"gpt2\""));
        AssertOneLineError(Generate(dir.Path), "gpt2");
    }

    [Fact]
    public void UnknownRopeType()
    {
        using var dir = CopyModel(d => Edit(d, "\"rope_type\": \"llama3\"", "\"rope_type\": \"longrope9\""));
        AssertOneLineError(Generate(dir.Path), "longrope9");
    }

    [Fact]
    public void PromptLongerThanTheModelAllows()
    {
        using var dir = CopyModel(d => Edit(d, "\"max_position_embeddings\": 131072", "\"max_position_embeddings\": 3"));
        string dump = Path.Combine(dir.Path, "logits.safetensors");
        AssertOneLineError(Generate(dir.Path, "--dump-logits", dump), "max_position_embeddings");
        Assert.False(File.Exists(dump));
    }

    [Fact]
    public void EmptyPrompt()
    {
        AssertOneLineError(CliRunner.Run("generate", "--model", Model, "--prompt", ""), "--prompt is empty");
        string path = Path.Combine(Path.GetTempPath(), "longctx-empty-prompt.txt");
        File.WriteAllText(path, "");
        AssertOneLineError(CliRunner.Run("generate", "--model", Model, "--prompt-file", path), path, "empty");
    }

    [Fact]
    public void UnknownOption() => AssertOneLineError(CliRunner.Run("generate", "--model", Model, "--frobnicate", "3"), "--frobnicate");

    [Fact]
    public void UnknownStrategy() => AssertOneLineError(Generate(Model, "--strategy", "pass-z"), "pass-z");

    [Fact]
    public void TensorParallelThatDoesNotDivideTheHeads() =>
        AssertOneLineError(Generate(Model, "--tensor-parallel", "3"), "--tensor-parallel 3 must divide num_key_value_heads (2)");

    [Fact]
    public void TensorParallelThatDoesNotDivideTheWorld()
    {
        var r = CliRunner.Run(["launch", "--nproc", "3", "--", "generate", "--model", Model, "--prompt-ids", "/dev/null", "--tensor-parallel", "2"]);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("--tensor-parallel 2 must divide WORLD_SIZE=3", r.Stderr);
    }

    [Fact]
    public void PrefillChunkOfZero() => AssertOneLineError(Generate(Model, "--prefill-chunk", "0"), "--prefill-chunk 0");

    [Fact]
    public void DenseOnSeveralRanks() => AssertOneLineError(Generate(Model, "--strategy", "dense", "--ranks", "2"), "dense");

    [Fact]
    public void MalformedPromptIds()
    {
        string path = Path.Combine(Path.GetTempPath(), "longctx-bad-ids.json");
        File.WriteAllText(path, "[1, 2,");
        AssertOneLineError(CliRunner.Run("generate", "--model", Model, "--prompt-ids", path), path);
    }

    /// <summary>
    /// A --dump-logits target that is not a new path or a regular file is refused before the model loads (the model
    /// here does not exist, and the error is still about the target), and is left as it was.
    /// </summary>
    [Fact]
    public void DumpLogitsToADirectoryIsRefusedBeforeLoading()
    {
        using var dir = ModelFixtures.NewTempDir();
        AssertOneLineError(Generate("/nonexistent/model", "--dump-logits", dir.Path), "--dump-logits", dir.Path, "is a directory");
        Assert.True(Directory.Exists(dir.Path));
    }

    /// <summary>
    /// An output in a directory no one may write in (/sys, even for root) is refused before any work: the model here
    /// does not exist, and the error is still about the output.
    /// </summary>
    [Fact]
    public void OutputsInADirectoryThatIsNotWritableAreRefusedBeforeTheWork()
    {
        AssertOneLineError(Generate("/nonexistent/model", "--dump-logits", "/sys/logits.safetensors"), "--dump-logits", "/sys is not writable");
        AssertOneLineError(CliRunner.Run("bench", "--device", "cpu", "--config", "tiny", "--context", "64", "--plot", "/sys/plot.svg"), "--plot", "/sys is not writable");
        AssertOneLineError(CliRunner.Run("bench", "--device", "cpu", "--config", "tiny", "--context", "64", "--calibrate", "/sys/c.json"), "--calibrate", "/sys is not writable");
        AssertOneLineError(CliRunner.Run("make-retrieval-prompts", "--out", "/sys/p.jsonl", "--contexts", "512", "--per-context", "1"), "/sys/p.jsonl", "/sys is not writable");
    }

    [Fact]
    public void DumpLogitsToADeviceIsRefused()
    {
        AssertOneLineError(Generate("/nonexistent/model", "--dump-logits", "/dev/full"), "--dump-logits /dev/full", "not a regular file");
        Assert.True(File.Exists("/dev/full"));
    }

    [Fact]
    public void DumpLogitsThroughASymlinkIsRefusedAndTheLinkKept()
    {
        using var dir = ModelFixtures.NewTempDir();
        File.WriteAllText(dir.File("target"), "kept");
        File.CreateSymbolicLink(dir.File("link"), dir.File("target"));
        AssertOneLineError(Generate("/nonexistent/model", "--dump-logits", dir.File("link")), "--dump-logits", "symbolic link");
        Assert.NotNull(new FileInfo(dir.File("link")).LinkTarget);
        Assert.Equal("kept", File.ReadAllText(dir.File("target")));
    }

    /// <summary>A regular file already there is replaced: the one kind of existing target the dump may take.</summary>
    [Fact]
    public void DumpLogitsOverARegularFileReplacesIt()
    {
        using var dir = ModelFixtures.NewTempDir();
        File.WriteAllText(dir.File("old.safetensors"), "old");
        var r = Generate(Model, "--dump-logits", dir.File("old.safetensors"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.NotEqual("old", File.ReadAllText(dir.File("old.safetensors")));
    }

    [Theory]
    [InlineData("Infinity")]
    [InlineData("NaN")]
    [InlineData("-1")]
    public void TemperatureThatIsNotAFiniteNonNegativeNumber(string value) =>
        AssertOneLineError(Generate(Model, "--temperature", value), "--temperature", "finite");

    [Theory]
    [InlineData("--compute-tflops", "-1", "--link-gb-per-s", "5")]
    [InlineData("--link-gb-per-s", "NaN", "--compute-tflops", "5")]
    [InlineData("--link-gb-per-s", "0", "--compute-tflops", "5")]
    public void RatesForAutoThatAreNotPositive(string option, string value, string other, string otherValue) =>
        AssertOneLineError(Generate(Model, option, value, other, otherValue), $"{option} {value} must be a positive number");

    [Theory]
    [InlineData("0")]
    [InlineData("-3")]
    public void ThreadsBelowOne(string value) => AssertOneLineError(Generate(Model, "--threads", value), $"--threads {value}", "1 or more");

    private static void Edit(string dir, string from, string to)
    {
        string path = Path.Combine(dir, "config.json");
        string text = File.ReadAllText(path);
        Assert.Contains(from, text);
        File.WriteAllText(path, text.Replace(from, to));
    }
}
