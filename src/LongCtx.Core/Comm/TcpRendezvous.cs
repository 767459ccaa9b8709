using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace LongCtx.Comm;

/// <summary>
/// Brings a multi-process group together over TCP. Every rank tells rank 0 (at MASTER_ADDR:MASTER_PORT) where
/// it listens; rank 0 answers everyone with the table of addresses and a blob it chose (the NCCL unique id for
/// GPU groups). <see cref="Join"/> then connects every pair once, the lower rank accepting, giving the full
/// mesh of sockets the TCP communicator runs on; <see cref="ShareFromRankZero"/> stops at the blob (NCCL
/// makes its own connections).
/// Rank 0 listens on MASTER_ADDR's interface only, and every other rank on the interface it reaches rank 0 by. Every
/// connection opens with a digest of the job's id (<see cref="LaunchEnvironment.JobId"/>), and so does rank 0's answer:
/// a connection without it is closed and the wait goes on, so another process can neither join the job nor pass for
/// its rank 0.
/// </summary>
public static class TcpRendezvous
{
    public sealed record Result(byte[] Blob, Socket?[] Peers);

    /// <summary>How long an accepted connection may take to present the job's id before it is dropped.</summary>
    private static readonly TimeSpan IdWait = TimeSpan.FromSeconds(10);

    /// <summary>The blob rank 0 passes (the others pass anything, e.g. empty), as every rank receives it.</summary>
    public static byte[] ShareFromRankZero(LaunchEnvironment env, byte[] blobFromRankZero, TimeSpan timeout)
    {
        var (_, blob, _) = Meet(env, blobFromRankZero, DateTime.UtcNow + timeout, mesh: false);
        return blob;
    }

    public static Result Join(LaunchEnvironment env, byte[] blobFromRankZero, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var (table, blob, mesh) = Meet(env, blobFromRankZero, deadline, mesh: true);
        using var listener = mesh!;
        byte[] digest = Digest(env);
        var peers = new Socket?[env.WorldSize];
        for (int j = 0; j < env.Rank; j++)
        {
            var s = Connect(table[j].Address.ToString(), table[j].Port, deadline, $"rank {j}", "is a firewall in between?");
            s.Send(digest);
            WriteInt(s, env.Rank);
            peers[j] = s;
        }
        int refused = 0;
        for (int n = env.Rank + 1; n < env.WorldSize;)
        {
            var s = Accept(listener, deadline) ?? throw new LongCtxException(
                $"rendezvous timed out: rank {env.Rank} waited for the connections of ranks {env.Rank + 1} to {env.WorldSize - 1}{Refused(refused)}; is a firewall in between?");
            if (!PresentsJob(s, digest, deadline))
            {
                refused++;
                s.Dispose();
                continue;
            }
            int from = ReadInt(s, "a peer");
            if (from <= env.Rank || from >= env.WorldSize || peers[from] is not null) throw new LongCtxException($"rendezvous: unexpected peer {from}");
            peers[from] = s;
            n++;
        }
        foreach (var p in peers) if (p is not null) p.NoDelay = true;
        return new Result(blob, peers);
    }

    /// <summary>Every rank's listening address (as this rank can reach it), rank 0's blob, and with <paramref name="mesh"/> this rank's listener.</summary>
    private static (IPEndPoint[] Table, byte[] Blob, TcpListener? Mesh) Meet(LaunchEnvironment env, byte[] blobFromRankZero, DateTime deadline, bool mesh)
    {
        string master = $"MASTER_ADDR:MASTER_PORT {env.MasterAddress}:{env.MasterPort}";
        byte[] digest = Digest(env);
        if (env.Rank != 0)
        {
            using var s = Connect(env.MasterAddress, env.MasterPort, deadline, "rank 0 (MASTER_ADDR:MASTER_PORT)", "check MASTER_ADDR and MASTER_PORT and that rank 0 runs");
            var listener = mesh ? Listen(Unmapped(((IPEndPoint)s.LocalEndPoint!).Address), 0) : null;
            try
            {
                s.Send(digest);
                WriteInt(s, env.Rank);
                WriteInt(s, listener is null ? 0 : ((IPEndPoint)listener.LocalEndpoint).Port);
                // Rank 0 answers once every rank has arrived: waiting longer than the deadline means one never came.
                s.ReceiveTimeout = Math.Max(1, (int)Remaining(deadline).TotalMilliseconds);
                string peer = $"rank 0 at {master} (it gives up when not all {env.WorldSize} ranks arrive in time, and closes on a rank with another {LaunchEnvironment.JobIdVariable})";
                if (!CryptographicOperations.FixedTimeEquals(Read(s, digest.Length, peer), digest))
                    throw new LongCtxException($"rendezvous: the process at {master} is not this job's rank 0 (it does not present the job's id): check MASTER_PORT and {LaunchEnvironment.JobIdVariable}");
                var (addresses, blob) = ReadTable(s, env.WorldSize, peer);
                return (addresses, blob, listener);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut)
            {
                listener?.Dispose();
                throw new LongCtxException($"rendezvous timed out: rank {env.Rank} reached rank 0 at {master}, but not all {env.WorldSize} ranks arrived; start every rank with the same WORLD_SIZE, MASTER_ADDR and MASTER_PORT");
            }
            catch (SocketException e)
            {
                listener?.Dispose();
                throw new LongCtxException($"rendezvous failed: rank 0 at {master} closed the connection ({e.Message}); it closes on a rank with another {LaunchEnvironment.JobIdVariable}");
            }
            catch
            {
                listener?.Dispose();
                throw;
            }
        }

        using var masterListener = ListenOnMasterAddress(env);
        var here = ((IPEndPoint)masterListener.LocalEndpoint).Address;
        var own = mesh ? Listen(here, 0) : null;
        int listenPort = own is null ? 0 : ((IPEndPoint)own.LocalEndpoint).Port;
        var table = new IPEndPoint[env.WorldSize];
        table[0] = new IPEndPoint(here, listenPort);
        var joined = new List<Socket>();
        int refused = 0;
        try
        {
            for (int i = 1; i < env.WorldSize;)
            {
                var s = Accept(masterListener, deadline) ?? throw new LongCtxException(
                    $"rendezvous timed out: rank 0 listening at {master} heard from {i - 1} of the other {env.WorldSize - 1} ranks{Refused(refused)}; " +
                    "start every rank with the same WORLD_SIZE, MASTER_ADDR and MASTER_PORT");
                if (!PresentsJob(s, digest, deadline))
                {
                    refused++;
                    s.Dispose();
                    continue;
                }
                joined.Add(s);
                s.ReceiveTimeout = Math.Max(1, (int)Remaining(deadline).TotalMilliseconds);
                int rank = ReadInt(s, "a joining rank"), port = ReadInt(s, "a joining rank");
                if (rank <= 0 || rank >= env.WorldSize || table[rank] is not null) throw new LongCtxException($"rendezvous: unexpected rank {rank} (two processes with one RANK?)");
                table[rank] = new IPEndPoint(Unmapped(((IPEndPoint)s.RemoteEndPoint!).Address), port);
                i++;
            }
            // Rank 0's own address as the others see it: the one they reached the master on.
            foreach (var s in joined)
            {
                var view = (IPEndPoint[])table.Clone();
                view[0] = new IPEndPoint(Unmapped(((IPEndPoint)s.LocalEndPoint!).Address), listenPort);
                s.Send(digest);
                WriteTable(s, view, blobFromRankZero);
            }
        }
        catch
        {
            own?.Dispose();
            throw;
        }
        finally
        {
            foreach (var s in joined) s.Dispose();
        }
        return (table, blobFromRankZero, own);
    }

    /// <summary>Rank 0's listener on MASTER_ADDR's interface: the first of its addresses that is this machine's.</summary>
    private static TcpListener ListenOnMasterAddress(LaunchEnvironment env)
    {
        IPAddress[] addresses;
        try { addresses = IPAddress.TryParse(env.MasterAddress, out var ip) ? [ip] : Dns.GetHostAddresses(env.MasterAddress); }
        catch (SocketException e) { throw new LongCtxException($"MASTER_ADDR {env.MasterAddress} does not resolve ({e.Message})"); }
        foreach (var address in addresses)
        {
            try { return Listen(address, env.MasterPort, env.WorldSize); }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressNotAvailable) { }
            catch (SocketException e) { throw new LongCtxException($"rank 0 cannot listen on MASTER_PORT {env.MasterPort} ({e.Message}): choose a free port"); }
        }
        throw new LongCtxException($"rank 0 cannot listen on MASTER_ADDR {env.MasterAddress} ({string.Join(", ", addresses.Select(a => a.ToString()))}): " +
            "no such address on this machine; run rank 0 on the host MASTER_ADDR names, and make it resolve there to that host's own interface");
    }

    private static TcpListener Listen(IPAddress address, int port, int backlog = 64)
    {
        var listener = new TcpListener(address, port);
        try
        {
            listener.Start(backlog);
            return listener;
        }
        catch
        {
            listener.Dispose();
            throw;
        }
    }

    /// <summary>Reads the job's digest from a new connection; false (and the caller drops it) when it is not there in time.</summary>
    private static bool PresentsJob(Socket s, byte[] digest, DateTime deadline)
    {
        s.ReceiveTimeout = Math.Max(1, (int)TimeSpan.FromTicks(Math.Min(IdWait.Ticks, Remaining(deadline).Ticks)).TotalMilliseconds);
        try { return CryptographicOperations.FixedTimeEquals(Read(s, digest.Length, "a connecting process"), digest); }
        catch (Exception e) when (e is SocketException or LongCtxException) { return false; }
    }

    private static string Refused(int refused) =>
        refused == 0 ? "" : $" and refused {refused} connection(s) without the job's id ({LaunchEnvironment.JobIdVariable} differs, or not a rank of this job)";

    /// <summary>What a rank sends for the job's id: its SHA-256, a fixed length, so the id itself never crosses the network.</summary>
    private static byte[] Digest(LaunchEnvironment env) => SHA256.HashData(Encoding.UTF8.GetBytes("longctx rendezvous\n" + env.JobId));

    private static IPAddress Unmapped(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

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
            table[i] = new IPEndPoint(Unmapped(new IPAddress(Read(s, 16, peer))), ReadInt(s, peer));
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
