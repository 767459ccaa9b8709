using LongCtx.Backends;
using LongCtx.Comm;
using LongCtx.Model;

namespace LongCtx.Engine;

/// <summary>
/// The one rank a process runs in a multi-process group (one process per rank, started by `longctx launch`
/// or any torchrun-style launcher): its backend, its model copy, and its communicator to the other
/// processes — TCP for CPU ranks (Backends.Cpu's CpuProcessRank), NCCL for GPU ranks (LongCtx.Cuda's GpuProcessRank).
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
    /// Rank <paramref name="timed"/> of a ring of <paramref name="ranks"/> alone on <paramref name="backend"/>, its peers
    /// echoing it (<see cref="EchoPeers"/>): one device's share of an N-device run, for timing. <paramref name="device"/>
    /// names the backend.
    /// </summary>
    public static ProcessRankGroup EchoedRank(ModelConfig config, ModelWeights weights, IBackend backend, int ranks, int timed, string device, Action? bindThread = null)
    {
        try
        {
            var grid = RankGrid.Of(config, ranks, 1);
            bindThread?.Invoke();
            var rt = new RankRuntime(timed, backend, new EchoPeers(timed, ranks, backend), new ModelReplica(config, weights, backend));
            return new ProcessRankGroup(rt, grid, $"{device} as rank {timed} of {ranks}, its peers echoed (no communication)", bindThread);
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
