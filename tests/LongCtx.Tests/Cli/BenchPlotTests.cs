using System.Xml.Linq;
using LongCtx.Tests.Model;

namespace LongCtx.Tests.Cli;

/// <summary>
/// `bench --plot FILE.svg`: a well-formed SVG with one line per strategy and rank count, a marker per point, projections
/// named as such; drawn from a run or from an earlier --json output; a bad target refused before anything runs.
/// </summary>
public class BenchPlotTests
{
    private static readonly XNamespace Svg = "http://www.w3.org/2000/svg";

    [Fact]
    public void RunDrawsEveryPointOnItsSeries()
    {
        using var dir = ModelFixtures.NewTempDir();
        var r = CliRunner.Run("bench", "--device", "cpu", "--config", "tiny", "--context", "48,96", "--gpus", "1,2", "--strategy", "pass-kv", "--json",
            "--plot", dir.File("ttft.svg"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        var svg = XDocument.Load(dir.File("ttft.svg")).Root!;
        Assert.Equal(2, svg.Descendants(Svg + "polyline").Count());
        Assert.Equal(4, svg.Descendants(Svg + "circle").Count());
        var texts = svg.Descendants(Svg + "text").Select(t => t.Value).ToList();
        Assert.Contains("pass-kv, 1 rank", texts);
        Assert.Contains("pass-kv, 2 ranks", texts);
        Assert.Contains("time to first token (s)", texts);
        // The JSON on stdout is the run's, untouched by the plot.
        Assert.Equal(4, System.Text.Json.JsonDocument.Parse(r.Stdout).RootElement.GetProperty("points").GetArrayLength());
    }

    /// <summary>The measured points the docs quote, drawn from their JSON: projections dotted and named, each split a bar.</summary>
    [Fact]
    public void EarlierResultsAreDrawnWithProjectionsNamed()
    {
        using var dir = ModelFixtures.NewTempDir();
        string results = Path.Combine(ModelFixtures.RepoRoot, "docs", "plots", "2026-11-24-one-rank-of.json");
        var r = CliRunner.Run("bench", "--from", results, "--plot", dir.File("share.svg"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        var svg = XDocument.Load(dir.File("share.svg")).Root!;
        Assert.Equal(3, svg.Descendants(Svg + "polyline").Count());
        Assert.Equal(2, svg.Descendants(Svg + "polyline").Count(l => (string?)l.Attribute("stroke-dasharray") == "2,3"));
        Assert.Contains("pass-kv, rank 0 of 4 alone (projection)", svg.Descendants(Svg + "text").Select(t => t.Value));
        // Six profiled points, each a bar of its parts (attention, GEMM, kernels; the 4-rank 128K one also copies and other).
        Assert.Equal(6 * 3 + 2, svg.Descendants(Svg + "rect").Count(e => e.Element(Svg + "title") is not null));
    }

    [Fact]
    public void PlotToADirectoryIsRefusedBeforeRunning()
    {
        using var dir = ModelFixtures.NewTempDir();
        var r = CliRunner.Run("bench", "--model", "/nonexistent/model", "--device", "cpu", "--plot", dir.Path);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("--plot", Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
    }

    [Theory]
    [InlineData("{\"points\": []}", "nothing to plot")]
    [InlineData("{\"rows\": 3}", "not the output of bench --json")]
    [InlineData("{\"points\": [{\"ranks\": 1}]}", "points[0] lacks")]
    [InlineData("[1, 2", "not JSON")]
    public void ResultsThatAreNotBenchOutputAreOneLine(string json, string problem)
    {
        using var dir = ModelFixtures.NewTempDir();
        File.WriteAllText(dir.File("r.json"), json);
        var r = CliRunner.Run("bench", "--from", dir.File("r.json"), "--plot", dir.File("p.svg"));
        Assert.NotEqual(0, r.ExitCode);
        string line = Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains(dir.File("r.json"), line);
        Assert.Contains(problem, line);
        Assert.False(File.Exists(dir.File("p.svg")));
    }

    [Fact]
    public void FromWithoutPlotIsOneLine()
    {
        var r = CliRunner.Run("bench", "--from", "results.json");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("--plot", Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
    }
}
