using LongCtx.Engine;

namespace LongCtx.Tests.Engine;

public sealed class RankThreadsTests
{
    [Fact]
    public void RunsEveryRankConcurrentlyAndAgain()
    {
        using var threads = new RankThreads(4);
        for (int call = 0; call < 50; call++)
        {
            // A barrier of all four only opens if the four bodies run at once.
            using var barrier = new Barrier(4);
            var seen = new int[4];
            var names = new string?[4];
            var errors = threads.Run(r =>
            {
                Assert.True(barrier.SignalAndWait(TimeSpan.FromSeconds(10)));
                seen[r] = call + r;
                names[r] = Thread.CurrentThread.Name;
            });
            Assert.All(errors, e => Assert.Null(e));
            Assert.Equal(Enumerable.Range(call, 4), seen);
            Assert.Equal(new[] { "rank 0", "rank 1", "rank 2", "rank 3" }, names.Select(n => n ?? "(no name)"));
        }
    }

    [Fact]
    public void ReportsEachRanksErrorAndCallsOnErrorOnItsThread()
    {
        using var threads = new RankThreads(3);
        string? failedOn = null;
        var errors = threads.Run(r =>
        {
            if (r == 1) throw new InvalidOperationException("rank 1 failed");
        }, onError: _ => failedOn = Thread.CurrentThread.Name);
        Assert.Null(errors[0]);
        Assert.Equal("rank 1 failed", errors[1]!.Message);
        Assert.Null(errors[2]);
        Assert.Equal("rank 1", failedOn);
        // The threads survive a failure: the next call runs on all of them.
        Assert.All(threads.Run(_ => { }), e => Assert.Null(e));
    }

    [Fact]
    public void RefusesANestedRunAndAnyRunAfterDispose()
    {
        var threads = new RankThreads(2);
        var errors = threads.Run(_ => threads.Run(_ => { }));
        Assert.All(errors, e => Assert.IsType<InvalidOperationException>(e));
        threads.Dispose();
        threads.Dispose();
        Assert.Throws<ObjectDisposedException>(() => threads.Run(_ => { }));
    }
}
