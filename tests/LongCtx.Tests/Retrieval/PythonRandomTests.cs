using LongCtx.Cli;

namespace LongCtx.Tests.Retrieval;

/// <summary>
/// PythonRandom against CPython 3.11.7's random.Random: every expected value was printed by python3 with the same
/// seed and calls (e.g. <c>r = random.Random(42); r.sample(range(1024), 16)</c>).
/// </summary>
public class PythonRandomTests
{
    private static readonly int[] Keys = Enumerable.Range(512, 1024).ToArray();

    [Theory]
    [InlineData(0L, 3626764237u, 1654615998u, 3255389356u, 3823568514u)]
    [InlineData(1234L, 4150886329u, 3342196574u, 1892932127u, 501869158u)]
    [InlineData(-5L, 2675342405u, 1097127993u, 3185950873u, 1539898300u)] // the seed's magnitude
    [InlineData(1099511627781L, 2166296868u, 2220160828u, 1153647273u, 2850991874u)] // 2^40 + 5: a key of two words
    public void SeedsLikeCPython(long seed, uint a, uint b, uint c, uint d)
    {
        var r = new PythonRandom(seed);
        Assert.Equal([a, b, c, d], new[] { r.NextUInt32(), r.NextUInt32(), r.NextUInt32(), r.NextUInt32() });
    }

    [Fact]
    public void RegeneratesItsStateLikeCPython()
    {
        var r = new PythonRandom(7);
        for (int i = 0; i < 623; i++) r.NextUInt32();
        Assert.Equal([960836459u, 693491440u, 3033636545u, 1853372068u], new[] { r.NextUInt32(), r.NextUInt32(), r.NextUInt32(), r.NextUInt32() });
    }

    [Fact]
    public void RandomIsCPythons53Bits()
    {
        var r = new PythonRandom(1234);
        Assert.Equal([0.9664535356921388, 0.4407325991753527, 0.007491470058587191], new[] { r.Random(), r.Random(), r.Random() });
    }

    [Fact]
    public void GetRandBitsCutsLikeCPython()
    {
        var r = new PythonRandom(42);
        int[] widths = [0, 1, 7, 31, 32, 33, 53, 64];
        Assert.Equal([0UL, 1, 14, 53710184, 3184935163, 1181241943, 1256845828445918, 1890702223848595625], widths.Select(r.GetRandBits).ToArray());
    }

    [Fact]
    public void RandBelowAndRandIntLikeCPython()
    {
        var r = new PythonRandom(42);
        long[] bounds = [1, 3, 1000, (1L << 40) + 3, long.MaxValue];
        Assert.Equal([0L, 0, 759, 538052153943, 1287010195568088798], bounds.Select(r.RandBelow).ToArray());
        r = new PythonRandom(42);
        Assert.Equal([7L, -2, -3, 8, 1, 0, 0, -1], Enumerable.Range(0, 8).Select(_ => r.RandInt(-3, 10)).ToArray());
        Assert.Equal(5, r.RandRange(5, 9));
        Assert.Throws<ArgumentException>(() => r.RandRange(3, 3));
    }

    [Fact]
    public void ChoiceAndChoicesLikeCPython()
    {
        var r = new PythonRandom(42);
        Assert.Equal([740, 563, 1075], new[] { r.Choice(Keys), r.Choice(Keys), r.Choice(Keys) });
        r = new PythonRandom(42);
        Assert.Equal([333, 28, 152, 126, 381, 351], r.Choices(Enumerable.Range(16, 496).ToArray(), 6));
    }

    [Fact]
    public void SampleRedrawsAgainstASetForFewItemsOfMany()
    {
        var r = new PythonRandom(42);
        Assert.Equal([228, 51, 563, 501, 457, 285, 209, 178, 864, 65, 61, 191, 447, 476, 54, 407], r.Sample(Enumerable.Range(0, 1024).ToArray(), 16));
        r = new PythonRandom(42);
        Assert.Equal([81, 14, 3], r.Sample(Enumerable.Range(0, 100).ToArray(), 3));
        r = new PythonRandom(42);
        var many = r.Sample(Enumerable.Range(0, 1024).ToArray(), 63); // setsize 21 + 4^4 = 277 < 1024: still the set
        Assert.Equal([228, 51, 563, 501, 457, 285, 209, 178], many[..8]);
        Assert.Equal([552, 449, 664, 114], many[^4..]);
        Assert.Equal(983753977u, r.NextUInt32());
    }

    [Fact]
    public void SampleShufflesAPoolWhenThatIsSmaller()
    {
        var r = new PythonRandom(42);
        Assert.Equal([20, 3, 0, 23, 8, 7, 24, 4, 28, 17], r.Sample(Enumerable.Range(0, 30).ToArray(), 10));
        r = new PythonRandom(42);
        var many = r.Sample(Enumerable.Range(0, 1024).ToArray(), 127); // setsize 21 + 4^5 = 1045 >= 1024: the pool
        Assert.Equal([228, 25, 759, 281, 250, 1023, 142, 754], many[..8]);
        Assert.Equal([794, 57, 234, 841], many[^4..]);
        Assert.Equal(127, many.Distinct().Count());
        Assert.Equal(137869475u, r.NextUInt32());
    }
}
