using System.Net;
using System.Net.Sockets;
using LongCtx.Comm;

namespace LongCtx.Tests.Comm;

/// <summary>
/// The TCP rendezvous between ranks as threads: rank 0's bytes (the NCCL unique id of a GPU group) reach
/// every rank unchanged, with or without the socket mesh; a rank that never comes, or a rank 0 that never
/// answers, ends in one error naming MASTER_ADDR:MASTER_PORT. Rank 0 listens on MASTER_ADDR's address only, and a
/// connection that does not present the job's id is dropped while the real ranks still meet.
/// </summary>
public class TcpRendezvousTests
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(30), Short = TimeSpan.FromSeconds(1.5);

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void RankZeroBytesReachEveryRank(int worldSize)
    {
        var id = RandomBytes(128);
        int port = FreePort();
        var received = RunRanks(worldSize, r => TcpRendezvous.ShareFromRankZero(Env(r, worldSize, port), r == 0 ? id : [], Generous));
        foreach (var bytes in received) Assert.Equal(id, bytes);
    }

    [Fact]
    public void JoinSharesTheBytesAndConnectsEveryPair()
    {
        const int worldSize = 3;
        var id = RandomBytes(40);
        int port = FreePort();
        var results = RunRanks(worldSize, r =>
        {
            var result = TcpRendezvous.Join(Env(r, worldSize, port), r == 0 ? id : [], Generous);
            // Each rank sends its number to every peer and reads theirs: the mesh joins the right pairs.
            for (int p = 0; p < worldSize; p++) if (p != r) result.Peers[p]!.Send(BitConverter.GetBytes(r));
            var heard = Enumerable.Range(0, worldSize).Select(p => p == r ? r : BitConverter.ToInt32(ReadExactly(result.Peers[p]!, 4))).ToArray();
            foreach (var s in result.Peers) s?.Dispose();
            return (result.Blob, heard);
        });
        foreach (var (blob, heard) in results)
        {
            Assert.Equal(id, blob);
            Assert.Equal(Enumerable.Range(0, worldSize), heard);
        }
    }

    [Fact]
    public void MissingRankZeroNamesTheMasterAddress()
    {
        int port = FreePort();
        var e = Assert.Throws<LongCtxException>(() => TcpRendezvous.ShareFromRankZero(Env(1, 2, port), [], Short));
        Assert.Contains($"127.0.0.1:{port}", e.Message);
    }

    [Fact]
    public void MissingRankTimesOutOnEveryRankNamingTheMasterAddress()
    {
        int port = FreePort();
        // World of 3 with rank 2 never started: rank 0 waits for it, rank 1 waits for rank 0's answer.
        var errors = RunRanks(2, r =>
        {
            try
            {
                TcpRendezvous.ShareFromRankZero(Env(r, 3, port), [1, 2, 3], Short);
                return "";
            }
            catch (LongCtxException e) { return e.Message; }
        });
        Assert.Contains($"127.0.0.1:{port}", errors[0]);
        Assert.Contains("heard from 1 of the other 2", errors[0]);
        Assert.Contains($"127.0.0.1:{port}", errors[1]);
        Assert.Contains("not all 3 ranks arrive", errors[1]);
    }

    private static LaunchEnvironment Env(int rank, int worldSize, int port, string job = "test-job") => new(rank, worldSize, rank, "127.0.0.1", port, job);

    /// <summary>
    /// A stranger that connects first and sends bytes that are not the job's digest, and a rank with another job's id,
    /// are both dropped; the job's ranks meet as if they had not been there, and rank 0 counts the refusals.
    /// </summary>
    [Fact]
    public async Task ConnectionsWithoutTheJobsIdAreRefused()
    {
        int port = FreePort();
        var id = RandomBytes(16);
        var rankZero = Task.Factory.StartNew(() => TcpRendezvous.ShareFromRankZero(Env(0, 2, port), id, Generous), TaskCreationOptions.LongRunning);
        using (var stranger = ConnectWhenListening(port))
        {
            stranger.Send(RandomBytes(32));
            // Dropped unanswered: rank 0 closes the connection without sending the table.
            Assert.Equal(0, stranger.Receive(new byte[1]));
        }
        var other = Assert.Throws<LongCtxException>(() => TcpRendezvous.ShareFromRankZero(Env(1, 2, port, job: "another-job"), [], Generous));
        Assert.Contains("closed the connection", other.Message);
        Assert.Equal(id, TcpRendezvous.ShareFromRankZero(Env(1, 2, port), [], Generous));
        Assert.Equal(id, await rankZero);
    }

    [Fact]
    public async Task RankZeroNamesTheConnectionsItRefusedWhenARankNeverCame()
    {
        int port = FreePort();
        var rankZero = Task.Factory.StartNew(() => Assert.Throws<LongCtxException>(() => TcpRendezvous.ShareFromRankZero(Env(0, 2, port), [1], Short)),
            TaskCreationOptions.LongRunning);
        Assert.Throws<LongCtxException>(() => TcpRendezvous.ShareFromRankZero(Env(1, 2, port, job: "another-job"), [], Short));
        var e = await rankZero;
        Assert.Contains("refused 1 connection(s) without the job's id", e.Message);
    }

    /// <summary>Rank 0 binds MASTER_ADDR (127.0.0.1), not every interface: the same port at 127.0.0.2, also this machine, is closed.</summary>
    [Fact]
    public async Task RankZeroListensOnMasterAddressOnly()
    {
        int port = FreePort();
        var rankZero = Task.Factory.StartNew(() => TcpRendezvous.ShareFromRankZero(Env(0, 2, port), [7], Generous), TaskCreationOptions.LongRunning);
        ConnectWhenListening(port).Dispose();
        using (var elsewhere = new Socket(SocketType.Stream, ProtocolType.Tcp))
        {
            var e = Assert.ThrowsAny<SocketException>(() => elsewhere.Connect(IPAddress.Parse("127.0.0.2"), port));
            Assert.Equal(SocketError.ConnectionRefused, e.SocketErrorCode);
        }
        Assert.Equal([7], TcpRendezvous.ShareFromRankZero(Env(1, 2, port), [], Generous));
        Assert.Equal([7], await rankZero);
    }

    [Fact]
    public void MasterAddressNotOfThisMachineIsOneLine()
    {
        var env = new LaunchEnvironment(0, 2, 0, "192.0.2.1", FreePort(), "test-job");
        var e = Assert.Throws<LongCtxException>(() => TcpRendezvous.ShareFromRankZero(env, [], Short));
        Assert.Contains("MASTER_ADDR 192.0.2.1", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    /// <summary>A connection to rank 0 once it listens (the test's ranks start in any order).</summary>
    private static Socket ConnectWhenListening(int port)
    {
        for (var deadline = DateTime.UtcNow + Generous; ; Thread.Sleep(50))
        {
            var s = new Socket(SocketType.Stream, ProtocolType.Tcp);
            try
            {
                s.Connect(IPAddress.Loopback, port);
                return s;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline) { s.Dispose(); }
        }
    }

    private static T[] RunRanks<T>(int count, Func<int, T> body)
    {
        var tasks = Enumerable.Range(0, count).Select(r => Task.Factory.StartNew(() => body(r), TaskCreationOptions.LongRunning)).ToArray();
        Assert.True(Task.WaitAll(tasks, TimeSpan.FromMinutes(1)), "the ranks did not finish");
        return tasks.Select(t => t.Result).ToArray();
    }

    private static byte[] RandomBytes(int n)
    {
        var bytes = new byte[n];
        Random.Shared.NextBytes(bytes);
        return bytes;
    }

    private static byte[] ReadExactly(Socket s, int n)
    {
        var buffer = new byte[n];
        for (int got = 0; got < n;) got += s.Receive(buffer, got, n - got, SocketFlags.None);
        return buffer;
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
