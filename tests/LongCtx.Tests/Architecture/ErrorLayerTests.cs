using System.Text.RegularExpressions;
using LongCtx.Cli;
using LongCtx.Server;
using LongCtx.Tests.Model;

namespace LongCtx.Tests.Architecture;

/// <summary>
/// Errors belong to their layer: Core and Cuda say what is wrong with a setting (<see cref="SettingException"/>) without
/// naming a front end's flag; the command line names the flag, the server the request field and the HTTP status.
/// </summary>
public partial class ErrorLayerTests
{
    [Fact]
    public void CoreAndCudaStringsNameNoCommandLineFlag()
    {
        var found = new List<string>();
        foreach (var project in new[] { "LongCtx.Core", "LongCtx.Cuda" })
            foreach (var file in Directory.EnumerateFiles(Path.Combine(ModelFixtures.RepoRoot, "src", project), "*.cs", SearchOption.AllDirectories))
            {
                // NVRTC's own options are not ours.
                if (file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") || Path.GetFileName(file) == "KernelCompiler.cs") continue;
                foreach (var (line, n) in File.ReadLines(file).Select((l, i) => (l, i + 1)))
                    if (!line.TrimStart().StartsWith("//", StringComparison.Ordinal) && FlagInString().IsMatch(line))
                        found.Add($"{Path.GetRelativePath(ModelFixtures.RepoRoot, file)}:{n}");
            }
        Assert.True(found.Count == 0, $"strings that name a flag: {string.Join(", ", found)}");
        Assert.Matches(FlagInString(), "throw new LongCtxException($\"--ranks {ranks} is out of range\");"); // the check can fail
    }

    [Fact]
    public void TheCommandLineNamesTheFlag()
    {
        Assert.Equal("--tensor-parallel 3 must divide the heads", ErrorMessages.Of(new SettingException(Setting.TensorParallel, "must divide the heads", 3)));
        Assert.Equal("--attention cudnn: cuDNN 9 not found", ErrorMessages.Of(new SettingException(Setting.Attention, ": cuDNN 9 not found", "cudnn")));
        Assert.Equal("star and apb need a query (--query, --query-file or --query-tokens)", ErrorMessages.Of(new SettingException(Setting.Query, "star and apb need a query")));
        Assert.Equal("the prompt needs 42 positions; the model allows 16 (max_position_embeddings in config.json): shorten the prompt",
            ErrorMessages.Of(new ContextLengthException(42, 16)));
    }

    [Fact]
    public void TheServerNamesTheFieldAndTheStatus()
    {
        var setting = ApiException.From(new SettingException(Setting.TopP, "must be in (0, 1]", 1.5f), "prompt");
        Assert.Equal((400, "top_p", "top_p 1.5 must be in (0, 1]"), (setting.Status, setting.Param, setting.Message));
        var length = ApiException.From(new ContextLengthException(42, 16), "messages");
        Assert.Equal((400, "messages", "context_length_exceeded"), (length.Status, length.Param, length.Code));
        Assert.Equal(400, ApiException.From(new LongCtxException("star runs a first turn only"), "prompt").Status);
        Assert.Equal(500, ApiException.From(new InvalidOperationException("a bug"), "prompt").Status);
    }

    [GeneratedRegex("\"[^\"]*--[a-z][a-z-]*")]
    private static partial Regex FlagInString();
}
