using System.Diagnostics;
using LongCtx.Sampling;

namespace LongCtx.Engine;

/// <summary>Chunked prefill: a long exact prefill as a series of partial prefills against the cache it builds.</summary>
public sealed partial class InferenceEngine
{
    /// <summary>
    /// Prefills each sequence's new tokens <paramref name="chunk"/> at a time: every piece is a partial prefill
    /// against the KV the earlier pieces left on the ranks (load-balanced on its own, so the cache stays even),
    /// which is exact — the same attention, cut along the queries. The activations of one piece are all that
    /// exist at once. With auto, each piece chooses its ring: later pieces meet a large cache, where the
    /// paper's heuristic turns to pass-Q. Returns what one whole prefill would: each sequence's last keepLast
    /// logits and, when asked, the argmax and the logprobs at every new position; the strategy and choice of the
    /// last piece.
    /// </summary>
    private PrefillResult PrefillInChunks(IReadOnlyList<(Sequence Sequence, int[] NewTokens)> batch, string strategy, int keepLast, bool argmaxAll,
        int? promptLogprobs, int chunk, Stopwatch clock)
    {
        var logits = new List<float[]>();
        var argmax = argmaxAll ? new List<int[]>() : null;
        var logprobs = promptLogprobs is null ? null : new List<PositionLogprobs[]>();
        PrefillResult? last = null;
        int vocab = Config.VocabSize;
        foreach (var (sequence, tokens) in batch)
        {
            int n = tokens.Length, firstKept = n - Math.Min(Math.Max(1, keepLast), n);
            var kept = new float[(n - firstKept) * vocab];
            var positions = new List<int>();
            var scored = new List<PositionLogprobs>();
            // Each piece is load-balanced on its own, so a rank ends with about n / Ranks of the new rows: room for
            // them now, or every piece would grow the cache and copy what the earlier ones left.
            _ranks.Run(rt =>
            {
                var kv = rt.CacheOf(sequence.Id);
                kv.Reserve(kv.Count + (n + Ranks - 1) / Ranks);
                return 0;
            });
            for (int start = 0; start < n; start += chunk)
            {
                int end = Math.Min(n, start + chunk);
                int wanted = Math.Max(0, end - Math.Max(start, firstKept));
                // A piece's last row scores the next piece's first token.
                var scoring = promptLogprobs is { } top ? (top, new[] { tokens[(start + 1)..Math.Min(n, end + 1)].Append(-1).Take(end - start).ToArray() }) : ((int, int[][])?)null;
                last = PrefillExact([(sequence, tokens[start..end])], strategy, Math.Max(1, wanted), argmaxAll, scoring, clock);
                if (wanted > 0) last.Logits[0].AsSpan(last.Logits[0].Length - wanted * vocab).CopyTo(kept.AsSpan((end - wanted - firstKept) * vocab));
                if (argmaxAll) positions.AddRange(last.ArgmaxAll![0]);
                if (last.PromptLogprobs is { } piece) scored.AddRange(piece[0]);
            }
            logits.Add(kept);
            argmax?.Add(positions.ToArray());
            logprobs?.Add(scored.ToArray());
        }
        return new PrefillResult(logits, argmax, last!.Strategy, last.Choice, clock.Elapsed, PromptLogprobs: logprobs);
    }
}
