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
    /// paper's heuristic turns to pass-Q. Returns what one whole prefill would: each sequence's kept logits, drawn token,
    /// and when asked the argmax and the logprobs at every new position; the strategy and choice of the last piece.
    /// </summary>
    private PrefillResult PrefillInChunks(IReadOnlyList<PrefillInput> batch, string strategy, bool argmaxAll, int chunk, Stopwatch clock)
    {
        var logits = new List<float[]>();
        var argmax = argmaxAll ? new List<int[]>() : null;
        var logprobs = batch.Any(b => b.Scoring is not null) ? new List<PositionLogprobs[]>() : null;
        var drawn = batch.Any(b => b.Draw is not null) ? new List<DrawnToken?>() : null;
        PrefillResult? last = null;
        int vocab = Config.VocabSize;
        foreach (var input in batch)
        {
            var (sequence, tokens) = (input.Sequence, input.NewTokens);
            int n = tokens.Length, firstKept = n - Math.Min(input.KeepLast, n);
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
                var piece = new PrefillInput(sequence, tokens[start..end])
                {
                    KeepLast = wanted,
                    Draw = end == n ? input.Draw : null,
                    DrawLogprobs = input.DrawLogprobs,
                    // A piece's last row scores the next piece's first token.
                    Scoring = input.Scoring is { } s ? (s.Next[start..end], s.Top) : null,
                };
                last = PrefillExact([piece], strategy, argmaxAll, clock);
                if (wanted > 0) last.Logits[0].CopyTo(kept.AsSpan((end - wanted - firstKept) * vocab));
                if (argmaxAll) positions.AddRange(last.ArgmaxAll![0]);
                if (last.PromptLogprobs is { } part) scored.AddRange(part[0]);
            }
            logits.Add(kept);
            argmax?.Add(positions.ToArray());
            logprobs?.Add(scored.ToArray());
            drawn?.Add(last!.Drawn?[0]);
        }
        return new PrefillResult(logits, argmax, last!.Strategy, last.Choice, clock.Elapsed, PromptLogprobs: logprobs, Drawn: drawn);
    }
}
