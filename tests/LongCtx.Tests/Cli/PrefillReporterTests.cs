using LongCtx.Cli;
using LongCtx.Engine;

namespace LongCtx.Tests.Cli;

/// <summary>
/// How a prefill's progress reads: percent, layers and the time left; on a terminal one line redrawn and cleared at
/// the end, in a log a plain line every few seconds and a last one, and nothing for a prefill shorter than that.
/// </summary>
public class PrefillReporterTests
{
    private static readonly TimeSpan Every = TimeSpan.FromSeconds(5);

    /// <summary>A prefill of <paramref name="layers"/> layers at <paramref name="perLayer"/> seconds each, as the engine reports it.</summary>
    private static IEnumerable<PrefillProgress> Prefill(int layers, double perLayer) =>
        Enumerable.Range(1, layers).Select(done => new PrefillProgress(done, layers, TimeSpan.FromSeconds(done * perLayer)));

    [Fact]
    public void LineGivesPercentLayersAndTimeLeft()
    {
        Assert.Equal("prefill: 25% (8 of 32 layers), 2.0 s, about 6.0 s left", PrefillReporter.Line(new PrefillProgress(8, 32, TimeSpan.FromSeconds(2))));
        Assert.Equal("prefill: 100% (32 of 32 layers), 8.0 s", PrefillReporter.Line(new PrefillProgress(32, 32, TimeSpan.FromSeconds(8))));
    }

    [Fact]
    public void LogGetsALineEveryFewSecondsAndALastOne()
    {
        var log = new StringWriter();
        var reporter = new PrefillReporter(log, terminal: false, Every);
        foreach (var p in Prefill(64, 0.5)) reporter.Report(p); // 32 s
        var lines = log.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        // At 5, 10, ..., 30 s, then the end.
        Assert.Equal(7, lines.Length);
        Assert.StartsWith("prefill: 16% (10 of 64 layers), 5.0 s, about 27.0 s left", lines[0]);
        Assert.Equal("prefill: 100% (64 of 64 layers), 32.0 s", lines[^1]);
        Assert.DoesNotContain('\r', log.ToString());

        // The next turn's prefill starts its own count; a short one writes nothing.
        var quiet = new StringWriter();
        var again = new PrefillReporter(quiet, terminal: false, Every);
        foreach (var p in Prefill(64, 0.5).Concat(Prefill(32, 0.1))) again.Report(p);
        Assert.Equal(lines.Length, quiet.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
    }

    [Fact]
    public void TerminalRedrawsOneLineAndClearsIt()
    {
        var screen = new StringWriter();
        var reporter = new PrefillReporter(screen, terminal: true, Every);
        foreach (var p in Prefill(4, 1)) reporter.Report(p);
        string text = screen.ToString();
        Assert.Equal(4, text.Count(c => c == '\r'));
        Assert.Contains("\rprefill: 75% (3 of 4 layers), 3.0 s, about 1.0 s left", text);
        Assert.EndsWith("\r\u001b[K", text);
        Assert.DoesNotContain('\n', text);
    }
}
