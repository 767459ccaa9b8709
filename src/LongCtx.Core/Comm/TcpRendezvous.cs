using System.Net;
using System.Net.Sockets;

namespace LongCtx.Comm;

/// <summary>
/// Brings a multi-process group together over TCP. Every rank tells rank 0 (at MASTER_ADDR:MASTER_PORT) where
/// it listens; rank 0 answers everyone with the table of addresses and a blob it chose (the NCCL unique id for
/// GPU groups). <see cref="Join"/> then connects every pair once, the lower rank accepting, giving the full
/// mesh of sockets the TCP communicator runs on; <see cref="ShareFromRankZero"/> stops at the blob (NCCL
/// makes its own connections).
/// </summary>
public static class TcpRendezvous
{
    public sealed record Result(byte[] Blob, Socket?[] Peers);

    /// <summary>The blob rank 0 passes (the others pass anything, e.g. empty), as every rank receives it.</summary>
    public static byte[] ShareFromRankZero(LaunchEnvironment env, byte[] blobFromRankZero, TimeSpan timeout) =>
        Meet(env, blobFromRankZero, DateTime.UtcNow + timeout, listenPort: 0).Blob;

    public static Result Join(LaunchEnvironment env, byte[] blobFromRankZero, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        using var listener = new TcpListener(IPAddress.Any, 0);
        listener.Start(env.WorldSize);
        var (table, blob) = Meet(env, blobFromRankZero, deadline, ((IPEndPoint)listener.LocalEndpoint).Port);

        var peers = new Socket?[env.WorldSize];
        for (int j = 0; j < env.Rank; j++)
        {
            var s = Connect(table[j].Address.ToString(), table[j].Port, deadline, $"rank {j}", "is a firewall in between?");
            WriteInt(s, env.Rank);
            peers[j] = s;
        }
        for (int n = env.Rank + 1; n < env.WorldSize; n++)
        {
            var s = Accept(listener, deadline) ?? throw new LongCtxException(
                $"rendezvous timed out: rank {env.Rank} waited for the connections of ranks {env.Rank + 1} to {env.WorldSize - 1}; is a firewall in between?");
            int from = ReadInt(s, "a peer");
            if (from <= env.Rank || from >= env.WorldSize || peers[from] is not null) throw new LongCtxException($"rendezvous: unexpected peer {from}");
            peers[from] = s;
        }
        foreach (var p in peers) if (p is not null) p.NoDelay = true;
        return new Result(blob, peers);
    }

    /// <summary>Every rank's listening address (as this rank can reach it) and rank 0's blob.</summary>
    private static (IPEndPoint[] Table, byte[] Blob) Meet(LaunchEnvironment env, byte[] blobFromRankZero, DateTime deadline, int listenPort)
    {
        string master = $"MASTER_ADDR:MASTER_PORT {env.MasterAddress}:{env.MasterPort}";
        if (env.Rank != 0)
        {
            using var s = Connect(env.MasterAddress, env.MasterPort, deadline, "rank 0 (MASTER_ADDR:MASTER_PORT)", "check MASTER_ADDR and MASTER_PORT and that rank 0 runs");
            WriteInt(s, env.Rank);
            WriteInt(s, listenPort);
            // Rank 0 answers once every rank has arrived: waiting longer than the deadline means one never came.
            s.ReceiveTimeout = Math.Max(1, (int)Remaining(deadline).TotalMilliseconds);
            try { return ReadTable(s, env.WorldSize, $"rank 0 at {master} (it gives up when not all {env.WorldSize} ranks arrive in time)"); }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut)
            {
                throw new LongCtxException($"rendezvous timed out: rank {env.Rank} reached rank 0 at {master}, but not all {env.WorldSize} ranks arrived; start every rank with the same WORLD_SIZE, MASTER_ADDR and MASTER_PORT");
            }
        }

        using var listener = new TcpListener(IPAddress.Any, env.MasterPort);
        try { listener.Start(env.WorldSize); }
        catch (SocketException e) { throw new LongCtxException($"rank 0 cannot listen on MASTER_PORT {env.MasterPort} ({e.Message}): choose a free port"); }
        var table = new IPEndPoint[env.WorldSize];
        table[0] = new IPEndPoint(IPAddress.Loopback, listenPort);
        var joined = new List<Socket>();
        try
        {
            for (int i = 1; i < env.WorldSize; i++)
            {
                var s = Accept(listener, deadline) ?? throw new LongCtxException(
                    $"rendezvous timed out: rank 0 listening at {master} heard from {i - 1} of the other {env.WorldSize - 1} ranks; " +
                    "start every rank with the same WORLD_SIZE, MASTER_ADDR and MASTER_PORT");
                joined.Add(s);
                s.ReceiveTimeout = Math.Max(1, (int)Remaining(deadline).TotalMilliseconds);
                int rank = ReadInt(s, "a joining rank"), port = ReadInt(s, "a joining rank");
                if (rank <= 0 || rank >= env.WorldSize || table[rank] is not null) throw new LongCtxException($"rendezvous: unexpected rank {rank} (two processes with one RANK?)");
                table[rank] = new IPEndPoint(((IPEndPoint)s.RemoteEndPoint!).Address, port);
            }
            // Rank 0's own address as the others see it: the one they reached the master on.
            foreach (var s in joined)
            {
                var view = (IPEndPoint[])table.Clone();
                view[0] = new IPEndPoint(((IPEndPoint)s.LocalEndPoint!).Address, listenPort);
                WriteTable(s, view, blobFromRankZero);
            }
        }
        finally
        {
            foreach (var s in joined) s.Dispose();
        }
        return (table, blobFromRankZero);
    }

    /// <summary>The next connection, or null if none came before the deadline.</summary>
    private static Socket? Accept(TcpListener listener, DateTime deadline)
    {
        var task = listener.AcceptSocketAsync();
        return task.Wait(Remaining(deadline)) ? task.Result : null;
    }

    private static Socket Connect(string host, int port, DateTime deadline, string who, string hint)
    {
        string? last = null;
        while (DateTime.UtcNow < deadline)
        {
            var s = new Socket(SocketType.Stream, ProtocolType.Tcp);
            try
            {
                // A host that drops packets would block a plain Connect for minutes, past the deadline.
                if (s.ConnectAsync(host, port).Wait(Remaining(deadline))) return s;
                s.Dispose();
                break;
            }
            catch (AggregateException e) when (e.InnerException is SocketException se)
            {
                s.Dispose();
                last = se.Message;
                Thread.Sleep(100); // rank 0 may not be listening yet
            }
        }
        throw new LongCtxException($"rendezvous timed out: cannot reach {who} at {host}:{port}{(last is null ? "" : $" ({last})")}; {hint}");
    }

    private static TimeSpan Remaining(DateTime deadline) => deadline - DateTime.UtcNow is var t && t > TimeSpan.Zero ? t : TimeSpan.Zero;

    private static void WriteTable(Socket s, IPEndPoint[] table, byte[] blob)
    {
        WriteInt(s, blob.Length);
        s.Send(blob);
        foreach (var e in table)
        {
            var address = e.Address.MapToIPv6().GetAddressBytes();
            s.Send(address);
            WriteInt(s, e.Port);
        }
    }

    private static (IPEndPoint[], byte[]) ReadTable(Socket s, int size, string peer)
    {
        var blob = Read(s, ReadInt(s, peer), peer);
        var table = new IPEndPoint[size];
        for (int i = 0; i < size; i++)
        {
            var address = new IPAddress(Read(s, 16, peer));
            table[i] = new IPEndPoint(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address, ReadInt(s, peer));
        }
        return (table, blob);
    }

    private static void WriteInt(Socket s, int v) => s.Send(BitConverter.GetBytes(v));

    private static int ReadInt(Socket s, string peer) => BitConverter.ToInt32(Read(s, 4, peer));

    private static byte[] Read(Socket s, int n, string peer)
    {
        var buffer = new byte[n];
        int got = 0;
        while (got < n)
        {
            int r = s.Receive(buffer, got, n - got, SocketFlags.None);
            if (r == 0) throw new LongCtxException($"rendezvous failed: {peer} closed the connection");
            got += r;
        }
        return buffer;
    }
}
