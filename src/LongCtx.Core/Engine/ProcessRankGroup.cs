using LongCtx.Backends.Cpu;
using LongCtx.Models;
using LongCtx.Parallel.Distributed;

namespace LongCtx.Engine;

/// <summary>
/// One CPU rank of a multi-process group (one process per rank, started by `longctx launch` or any
/// torchrun-style launcher): its backend, its model copy, and the TCP communicator to the other processes.
/// Every process runs the same engine calls (SPMD); each one's lead rank computes the logits, which the
/// all-reduce made identical everywhere, so every process draws the same tokens.
/// </summary>
public sealed class ProcessRankGroup : IRankGroup
{
    private readonly RankRuntime _rank;

    public ProcessRankGroup(ModelConfig config, ModelWeights weights, LaunchEnvironment env, int? threads = null)
    {
        var rendezvous = TcpRendezvous.Join(env, [], TimeSpan.FromMinutes(2));
        var backend = new CpuBackend(threads);
        _rank = new RankRuntime(env.Rank, backend, new TcpCommunicator(env.Rank, rendezvous.Peers), new ModelReplica(config, weights, backend));
        Size = env.WorldSize;
    }

    public int Size { get; }
    public int LeadRank => _rank.Rank;
    public string Device => $"cpu x{Size} (processes; this is rank {_rank.Rank})";

    public T[] Run<T>(Func<RankRuntime, T> body) => [body(_rank)];

    public void Dispose()
    {
        _rank.Dispose();
        _rank.Comm.Dispose();
        _rank.Backend.Dispose();
    }
}
