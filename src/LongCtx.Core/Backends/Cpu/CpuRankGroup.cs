using LongCtx.Comm;
using LongCtx.Engine;
using LongCtx.Model;

namespace LongCtx.Backends.Cpu;

/// <summary>
/// Ranks as threads of this process, each with a CPU backend and a model copy that points at the same
/// host weights (the CPU backend reads weights in place), joined by in-process communicators: one ring per
/// tensor rank and, with tensor parallelism, one group per context rank (<see cref="RankRuntime"/>).
/// </summary>
public sealed class CpuRankGroup : IRankGroup
{
    private readonly InProcessGroup _world;
    private readonly RankRuntime[] _ranks;

    /// <param name="ranks">context-parallel ranks</param>
    /// <param name="tensorRanks">ranks each layer is split over; the group runs ranks × tensorRanks threads</param>
    /// <param name="hook">sees every FP8 quantisation of every rank (tests)</param>
    public CpuRankGroup(ModelConfig config, ModelWeights weights, int ranks, int? threads = null, int tensorRanks = 1, IQuantizationHook? hook = null)
    {
        if (ranks < 1 || ranks > 64) throw new SettingException(Setting.Ranks, "is out of range: use 1 to 64", ranks);
        CpuBackend.RequireThreads(threads);
        var grid = RankGrid.Of(config, ranks, tensorRanks);
        if (grid.World > 64)
            throw new SettingException(Setting.TensorParallel, $"is out of range: use 1 to {64 / ranks} with {ranks} ranks (at most 64 threads in all)", tensorRanks);
        ContextRanks = ranks;
        TensorRanks = tensorRanks;
        int world = grid.World;
        _world = new InProcessGroup(world);
        var rings = Enumerable.Range(0, tensorRanks).Select(_ => tensorRanks == 1 ? _world : _world.Subgroup(ranks)).ToArray();
        var slices = Enumerable.Range(0, ranks).Select(_ => tensorRanks == 1 ? null : _world.Subgroup(tensorRanks)).ToArray();
        // Ranks run concurrently, so each one's kernels get a share of the cores.
        int perRank = Math.Max(1, (threads ?? Environment.ProcessorCount) / world);
        _ranks = Enumerable.Range(0, world).Select(w =>
        {
            int c = grid.ContextOf(w), t = grid.TensorOf(w);
            var backend = new CpuBackend(perRank, hook);
            var model = new ModelReplica(config, weights, backend, slices[c]?.Communicator(t));
            return new RankRuntime(w, backend, rings[t].Communicator(c), model);
        }).ToArray();
    }

    public int ContextRanks { get; }
    public int TensorRanks { get; }
    public int LeadRank => 0;
    public string Device => TensorRanks == 1 ? $"cpu x{ContextRanks} (threads)" : $"cpu x{ContextRanks * TensorRanks} (threads: {ContextRanks} context x {TensorRanks} tensor)";

    public T[] Run<T>(Func<RankRuntime, T> body) => _world.Run(comm => body(_ranks[comm.Rank]));

    public void Dispose()
    {
        foreach (var r in _ranks)
        {
            r.Dispose();
            r.Backend.Dispose();
        }
    }
}
