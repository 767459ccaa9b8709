using LongCtx.Backends.Cpu;
using LongCtx.Models;
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
public sealed class ProcessRankGroup(RankRuntime rank, int size, string device, Action? bindThread = null) : IRankGroup
{
    public static ProcessRankGroup OnCpu(ModelConfig config, ModelWeights weights, LaunchEnvironment env, int? threads = null)
    {
        var rendezvous = TcpRendezvous.Join(env, [], env.RendezvousTimeout);
        var backend = new CpuBackend(threads);
        var rt = new RankRuntime(env.Rank, backend, new TcpCommunicator(env.Rank, rendezvous.Peers), new ModelReplica(config, weights, backend));
        return new ProcessRankGroup(rt, env.WorldSize, $"cpu x{env.WorldSize} (processes; this is rank {env.Rank})");
    }

    public int Size => size;
    public int LeadRank => rank.Rank;
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
        rank.Backend.Dispose();
    }
}
