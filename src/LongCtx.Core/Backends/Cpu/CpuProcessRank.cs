using System.Net.Sockets;
using LongCtx.Comm;
using LongCtx.Engine;
using LongCtx.Model;

namespace LongCtx.Backends.Cpu;

/// <summary>This process as one CPU rank of a multi-process group (one process per rank), joined over TCP.</summary>
public static class CpuProcessRank
{
    /// <summary>
    /// This process as a CPU rank: the rendezvous connects every pair of ranks, then the ring and the
    /// tensor-parallel group each take the sockets to their own members (a pair is in one of them at most,
    /// so each socket has one reader) and the rest are closed.
    /// </summary>
    public static ProcessRankGroup Join(ModelConfig config, ModelWeights weights, LaunchEnvironment env, int? threads = null, int tensorRanks = 1)
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
}
