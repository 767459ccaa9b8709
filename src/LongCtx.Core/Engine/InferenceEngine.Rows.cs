using System.Runtime.InteropServices;
using LongCtx.Backends;
using LongCtx.ContextParallel;
using LongCtx.Model;
using LongCtx.Sampling;
using LongCtx.Tensors;

namespace LongCtx.Engine;

/// <summary>What a rank's forward pass brings back: on the lead rank the wanted rows' results; the argmax at each of its rows when asked.</summary>
internal sealed record RankOutput(float[]? Logits, int[]? Tokens, PositionLogprobs[]? TokenLogprobs, PositionLogprobs[]? Scored, int[]? ArgmaxAll);

/// <summary>A forward pass on every rank, and the results of its wanted rows on the lead rank.</summary>
public sealed partial class InferenceEngine
{
    /// <summary>
    /// Runs the model on a rank's rows, then brings the wanted rows' hidden states to every rank of its ring
    /// (an all-reduce of a buffer where each rank fills only its own rows — adding zeros is exact) and has
    /// the lead rank of each process compute their results (every rank has them after the all-reduce; the
    /// ranks of a tensor-parallel group hold the same hidden states, so each ring has them all). Without
    /// <paramref name="gather"/> every rank holds every row (a decode step, a query phase) and the lead reads its own.
    /// </summary>
    private RankOutput ForwardAndGather(RankRuntime rt, int[] ids, AttentionStep step, IAttentionStrategy strategy,
        WantedRows wanted, Func<int, int> localRowOf, bool gather, bool argmaxAll = false, Action<Tensor>? layerDone = null)
    {
        var model = rt.Model;
        var c = model.Config;
        var b = rt.Backend;
        using var hidden = model.Forward(ids, step.Queries,
            (layer, q, k, v) => strategy.Attend(new AttentionLayer(b, rt.Comm, step, layer, model.Heads, model.KvHeads, c.HeadDim, c.AttentionOf(layer)), q, k, v), layerDone);
        // Every rank gathers the same row sets in the same order: each gather is a collective.
        using var kept = wanted.Kept.Count == 0 ? null : GatherRows(rt, hidden, wanted.Kept, localRowOf, gather);
        using var drawn = wanted.Drawn.Count == 0 ? null : GatherRows(rt, hidden, wanted.Drawn, localRowOf, gather);
        using var scored = wanted.Scored.Count == 0 ? null : GatherRows(rt, hidden, wanted.Scored, localRowOf, gather);
        var argmax = argmaxAll ? ArgmaxOfRows(model, hidden) : null;
        if (rt.WorldRank != _ranks.LeadRank) return new RankOutput(null, null, null, null, argmax);
        // Drawn where the logits are: only the tokens (and their logprobs) come back.
        var (tokens, logprobs) = drawn is null ? (null, null) : model.DrawTokens(drawn, CollectionsMarshal.AsSpan(wanted.Draws), wanted.DrawTop);
        return new RankOutput(kept is null ? null : model.Logits(kept), tokens, logprobs,
            scored is null ? null : model.Logprobs(scored, [.. wanted.ScoredTokens], wanted.ScoredTop), argmax);
    }

    /// <summary>
    /// The hidden states of the given rows of the batch, in that order, on every rank: each rank copies the ones it
    /// holds (runs of consecutive rows in one copy, the rest in one launch) and, with gather, an all-reduce adds the
    /// ranks' buffers, zero where a rank holds nothing.
    /// </summary>
    private static Tensor GatherRows(RankRuntime rt, Tensor hidden, List<int> batchRows, Func<int, int> localRowOf, bool gather)
    {
        var b = rt.Backend;
        var rows = b.Allocate(b.ActivationType, batchRows.Count, hidden.Shape[1]);
        var copies = new List<(Tensor Source, Tensor Destination)>();
        for (int i = 0; i < batchRows.Count;)
        {
            int local = localRowOf(batchRows[i]), run = 1;
            if (local < 0) { i++; continue; }
            while (i + run < batchRows.Count && localRowOf(batchRows[i + run]) == local + run) run++;
            copies.Add((hidden.SliceRows(local, run), rows.SliceRows(i, run)));
            i += run;
        }
        b.CopyEach(CollectionsMarshal.AsSpan(copies)); // one launch for a decode step's rows on the GPU
        if (gather) rt.Comm.AllReduceSum(rows);
        return rows;
    }

    /// <summary>The most likely next token after every row, computed in slices so the logits of a long prompt never exist at once.</summary>
    private static int[] ArgmaxOfRows(ModelReplica model, Tensor hidden)
    {
        const int slice = 128;
        var result = new int[hidden.Rows];
        int vocab = model.Config.VocabSize;
        for (int start = 0; start < hidden.Rows; start += slice)
        {
            int n = Math.Min(slice, hidden.Rows - start);
            var logits = model.Logits(hidden.SliceRows(start, n));
            for (int i = 0; i < n; i++) result[start + i] = Sampler.ArgMax(logits.AsSpan(i * vocab, vocab));
        }
        return result;
    }
}
