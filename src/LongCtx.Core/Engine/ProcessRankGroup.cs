using LongCtx.Backends;
using LongCtx.Backends.Cpu;
using System.Net.Sockets;
using LongCtx.Models;
using LongCtx.Parallel;
using LongCtx.Parallel.Distributed;

namespace LongCtx.Engine;

/// <summary>
/// The one rank a process runs in a multi-process group (one process per rank, started by `longctx launch`
/// or any torchrun-style launcher): its backend, its model copy, and its communicator to the other
/// processes — TCP for CPU ranks (<see cref="OnCpu"/>), NCCL for GPU ranks (LongCtx.Cuda's GpuProcessRank).
/// Every process runs the same engine calls (SPMD); each one's lead rank computes the logits, which the
/// all-reduce made identical everywhere, so every process draws the same tokens.
/// </summary>
/// <param name="bindThread">
/// Makes the rank's device usable from the calling thread (a GPU's context is per thread, and the engine
/// may be driven from a thread other than the one that built the group); nothing for CPU ranks.
/// </param>
public sealed class ProcessRankGroup(RankRuntime rank, RankGrid grid, string device, Action? bindThread = null) : IRankGroup
{
    /// <summary>
    /// This process as a CPU rank: the rendezvous connects every pair of ranks, then the ring and the
    /// tensor-parallel group each take the sockets to their own members (a pair is in one of them at most,
    /// so each socket has one reader) and the rest are closed.
    /// </summary>
    public static ProcessRankGroup OnCpu(ModelConfig config, ModelWeights weights, LaunchEnvironment env, int? threads = null, int tensorRanks = 1)
    {
        var grid = RankGrid.ForWorld(config, env.WorldSize, tensorRanks);
        var peers = TcpRendezvous.Join(env, [], env.RendezvousTimeout).Peers;
        int c = grid.ContextOf(env.Rank), t = grid.TensorOf(env.Rank);
        int[] ring = grid.Ring(t), slice = grid.TensorGroup(c);
        Socket?[] Among(int[] members) => members.Select(m => m == env.Rank ? null : peers[m]).ToArray();
        foreach (var (s, w) in peers.Select((s, w) => (s, w)))
            if (!ring.Contains(w) && !slice.Contains(w)) s?.Dispose();
        var tensorComm = tensorRanks == 1 ? null : new TcpCommunicator(t, Among(slice));
        var backend = new CpuBackend(threads);
        var rt = new RankRuntime(env.Rank, backend, new TcpCommunicator(c, Among(ring)), new ModelReplica(config, weights, backend, tensorComm));
        return new ProcessRankGroup(rt, grid, $"cpu x{env.WorldSize} (processes; this is rank {env.Rank}{grid.Describe(env.Rank)})");
    }

    /// <summary>
    /// Rank 0 of a ring of <paramref name="ranks"/> alone on <paramref name="backend"/>, its peers echoing it
    /// (<see cref="EchoPeers"/>): one device's share of an N-device run, for timing. <paramref name="device"/> names the backend.
    /// </summary>
    public static ProcessRankGroup EchoedRank(ModelConfig config, ModelWeights weights, IBackend backend, int ranks, string device, Action? bindThread = null)
    {
        try
        {
            var grid = RankGrid.Of(config, ranks, 1);
            bindThread?.Invoke();
            var rt = new RankRuntime(0, backend, new EchoPeers(0, ranks, backend), new ModelReplica(config, weights, backend));
            return new ProcessRankGroup(rt, grid, $"{device} as rank 0 of {ranks}, its peers echoed (no communication)", bindThread);
        }
        catch
        {
            backend.Dispose(); // the group owns the backend it was given: without a group, nothing else frees it
            throw;
        }
    }

    public int ContextRanks => grid.ContextRanks;
    public int TensorRanks => grid.TensorRanks;
    public int LeadRank => rank.WorldRank;
    public string Device => device;

    public T[] Run<T>(Func<RankRuntime, T> body)
    {
        bindThread?.Invoke();
        return [body(rank)];
    }

    public void Dispose()
    {
        bindThread?.Invoke();
        rank.Dispose();
        rank.Comm.Dispose();
        rank.TensorComm?.Dispose();
        rank.Backend.Dispose();
    }
}
