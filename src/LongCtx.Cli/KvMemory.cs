using LongCtx.Engine;
using LongCtx.Model;

namespace LongCtx.Cli;

/// <summary>
/// Whether a batch of long sequences' KV cache fits on the GPUs before any is prefilled. Ranks running out
/// one after another inside a collective could leave the others waiting; checking first gives one clear line.
/// </summary>
internal static class KvMemory
{
    /// <summary>What the cache grows by beyond its rows (<see cref="ContextParallel.SequenceKv"/> grows by an eighth) plus slack for activations.</summary>
    private const double Headroom = 1.2;

    /// <summary>
    /// Full-attention layers hold their share of every token; a sliding-window layer at most its window of each sequence,
    /// all of it on one rank where a prefill's last chunk holds it.
    /// </summary>
    public static void CheckFits(IRankGroup group, ModelConfig config, int tokensPerSequence, int batch, bool fp8 = false)
    {
        long row = 2L * config.NumKvHeads * config.HeadDim * (fp8 ? 1 : 2); // K and V, bf16 or e4m3
        int sliding = Enumerable.Range(0, config.NumLayers).Count(l => config.WindowOf(l) is not null), full = config.NumLayers - sliding;
        long perToken = full * row;
        int ranks = group.ContextRanks * group.TensorRanks;
        long tokensPerRank = ((long)batch * tokensPerSequence + ranks - 1) / ranks;
        long windowRows = sliding * (long)batch * Math.Min(config.SlidingWindow ?? 0, tokensPerSequence);
        double need = (tokensPerRank * perToken + windowRows * row) * Headroom;
        long available = group.Run(rt => rt.Backend.Info.AvailableMemoryBytes()).Min();
        if (need > available)
            throw new LongCtxException($"{batch} sequence(s) of {tokensPerSequence} tokens need about {need / 1e9:0.#} GB of KV cache per GPU on {ranks} GPU(s) " +
                                       $"({perToken / 1024} KB per token{(sliding > 0 ? $" in the {full} full-attention layers" : "")}), but {available / 1e9:0.#} GB is free: use more GPUs, a smaller --batch or a shorter --context");
    }
}
