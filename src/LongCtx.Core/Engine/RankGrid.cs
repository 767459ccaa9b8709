using LongCtx.Model;

namespace LongCtx.Engine;

/// <summary>
/// Where each rank sits when context parallelism (across nodes) combines with tensor parallelism (inside a
/// node): world rank w = context · TensorRanks + tensor, so a tensor-parallel group is TensorRanks
/// consecutive ranks — one node under a launcher that numbers ranks node by node — and the ring of tensor
/// rank t joins the ranks with tensor rank t in every node.
/// </summary>
public readonly record struct RankGrid(int ContextRanks, int TensorRanks)
{
    public int World => ContextRanks * TensorRanks;

    /// <summary>
    /// The grid of <paramref name="contextRanks"/> × <paramref name="tensorRanks"/> ranks for this model: refused here,
    /// before any rank is built, when the model's heads or MLP do not split over the tensor ranks.
    /// </summary>
    public static RankGrid Of(ModelConfig config, int contextRanks, int tensorRanks)
    {
        if (tensorRanks < 1) throw new SettingException(Setting.TensorParallel, "must be 1 or more", tensorRanks);
        if (tensorRanks > 1) TensorSlice.Of(config, 0, tensorRanks);
        return new RankGrid(contextRanks, tensorRanks);
    }

    /// <summary>The grid of a multi-process world (WORLD_SIZE processes) split into tensor-parallel groups.</summary>
    public static RankGrid ForWorld(ModelConfig config, int worldSize, int tensorRanks)
    {
        if (tensorRanks >= 1 && worldSize % tensorRanks != 0)
            throw new SettingException(Setting.TensorParallel, $"must divide WORLD_SIZE={worldSize}: the world is context ranks x tensor ranks", tensorRanks);
        return Of(config, worldSize / Math.Max(1, tensorRanks), tensorRanks);
    }

    public int ContextOf(int worldRank) => worldRank / TensorRanks;
    public int TensorOf(int worldRank) => worldRank % TensorRanks;
    public int WorldRank(int context, int tensor) => context * TensorRanks + tensor;

    /// <summary>", context rank c of C, tensor rank t of T" for logs; empty without tensor parallelism.</summary>
    public string Describe(int worldRank) =>
        TensorRanks == 1 ? "" : $", context rank {ContextOf(worldRank)} of {ContextRanks}, tensor rank {TensorOf(worldRank)} of {TensorRanks}";

    /// <summary>The world ranks of tensor rank t's context-parallel ring, in ring order.</summary>
    public int[] Ring(int tensor)
    {
        int t = TensorRanks;
        return Enumerable.Range(0, ContextRanks).Select(c => c * t + tensor).ToArray();
    }

    /// <summary>The world ranks of context rank c's tensor-parallel group, in slice order.</summary>
    public int[] TensorGroup(int context) => Enumerable.Range(context * TensorRanks, TensorRanks).ToArray();
}
