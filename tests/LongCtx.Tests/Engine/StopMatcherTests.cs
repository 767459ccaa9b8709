using LongCtx.Engine;

namespace LongCtx.Tests.Engine;

public class StopMatcherTests
{
    [Fact]
    public void HoldsBackAPossibleStartAndTrimsTheStop()
    {
        var m = new StopMatcher(["</end>", "XYZ"]);
        Assert.Equal(("Hello ", false), m.Push("Hello </"));
        Assert.Equal(("", false), m.Push("en"));
        Assert.Equal(("</enx ok", false), m.Push("x ok"));
        Assert.Equal((" then", true), m.Push(" then</end> more"));
    }

    [Fact]
    public void FlushReturnsHeldTextWhenNoStopCame()
    {
        var m = new StopMatcher(["XYZ"]);
        Assert.Equal(("ab", false), m.Push("abXY"));
        Assert.Equal("XY", m.Flush());
    }

    [Fact]
    public void EarliestStopWins()
    {
        var m = new StopMatcher(["cd", "b"]);
        Assert.Equal(("a", true), m.Push("abcd"));
    }

    [Fact]
    public void NoStopsPassesEverything() => Assert.Equal(("x", false), new StopMatcher([]).Push("x"));
}
