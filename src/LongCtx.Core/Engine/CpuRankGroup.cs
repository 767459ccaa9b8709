using LongCtx.Backends.Cpu;
using LongCtx.Models;
using LongCtx.Parallel;

namespace LongCtx.Engine;

/// <summary>
/// N ranks as threads of this process, each with a CPU backend and a model copy that points at the same
/// host weights (the CPU backend reads weights in place), joined by the in-process communicator.
/// </summary>
public sealed class CpuRankGroup : IRankGroup
{
    private readonly InProcessGroup _group;
    private readonly RankRuntime[] _ranks;

    public CpuRankGroup(ModelConfig config, ModelWeights weights, int ranks, int? threads = null)
    {
        if (ranks < 1 || ranks > 64) throw new LongCtxException($"--ranks {ranks} is out of range: use 1 to 64");
        _group = new InProcessGroup(ranks);
        // Ranks run concurrently, so each one's kernels get a share of the cores.
        int perRank = Math.Max(1, (threads ?? Environment.ProcessorCount) / ranks);
        _ranks = Enumerable.Range(0, ranks).Select(r =>
        {
            var backend = new CpuBackend(perRank);
            return new RankRuntime(r, backend, _group.Communicator(r), new ModelReplica(config, weights, backend));
        }).ToArray();
    }

    public int Size => _ranks.Length;
    public int LeadRank => 0;
    public string Device => $"cpu x{Size} (threads)";

    public T[] Run<T>(Func<RankRuntime, T> body) => _group.Run(comm => body(_ranks[comm.Rank]));

    public void Dispose()
    {
        foreach (var r in _ranks)
        {
            r.Dispose();
            r.Backend.Dispose();
        }
    }
}
