using System.Diagnostics;
using LongCtx.Approximate;
using LongCtx.ContextParallel;
using LongCtx.Sampling;
namespace LongCtx.Engine;

/// <summary>One generation: what to prefill, how many tokens to draw and how.</summary>
public sealed record GenerationRequest(
    int[] PromptTokens,
    int MaxNewTokens,
    SamplingOptions Sampling,
    string Strategy = StrategyNames.Auto,
    int KeepLastLogits = 1,
    IReadOnlyCollection<int>? StopTokens = null,
    ApproximateOptions? Approximate = null,
    bool MeasureError = false);

/// <summary>
/// How an approximate prefill was set up and, when measured, how far its last-position logits are from
/// exact pass-KV on the same ranks: relative L2 error and whether the top-1 token agrees.
/// </summary>
public sealed record ApproximationReport(int QueryTokens, int AnchorTokens, int PassingTokens, IReadOnlyList<int> BlockTokens, double? RelativeError, bool? Top1Agrees);

/// <summary>What came out, with the timings a user of a serving engine looks at.</summary>
public sealed record GenerationResult(
    IReadOnlyList<int> Tokens,
    string FinishReason,
    int PromptTokens,
    int CachedTokens,
    string Strategy,
    StrategyChoice? Choice,
    float[] PromptLogits,
    double TtftMs,
    double DecodeMsPerToken,
    ApproximationReport? Approximation = null);

public static class Generation
{
    /// <summary>
    /// Prefills the request's tokens that the sequence has not cached yet, then decodes token by token,
    /// calling onToken as each is drawn. The last drawn token's KV is not cached (it was never fed back);
    /// <see cref="UncachedSuffix"/> picks it up with the next turn.
    /// </summary>
    public static GenerationResult Generate(this InferenceEngine engine, Sequence sequence, GenerationRequest request,
        Action<int>? onToken = null, CancellationToken cancel = default)
    {
        var newTokens = UncachedSuffix(sequence, request.PromptTokens);
        int cachedBefore = sequence.CachedTokens;
        var sampler = new Sampler(request.Sampling);
        var clock = Stopwatch.StartNew();
        var prefill = engine.Prefill([(sequence, newTokens)], request.Strategy, Math.Max(1, request.KeepLastLogits), approximate: request.Approximate);
        var promptLogits = prefill.Logits[0];
        int vocab = engine.Config.VocabSize;
        var output = new List<int>();
        string finish = "length";
        double ttft = 0;
        var decodeClock = new Stopwatch();
        if (request.MaxNewTokens > 0)
        {
            int token = sampler.Next(promptLogits.AsSpan(promptLogits.Length - vocab, vocab));
            ttft = clock.Elapsed.TotalMilliseconds;
            decodeClock.Start();
            while (true)
            {
                output.Add(token);
                onToken?.Invoke(token);
                if (request.StopTokens?.Contains(token) == true) { finish = "stop"; break; }
                if (output.Count >= request.MaxNewTokens || cancel.IsCancellationRequested) break;
                if (sequence.CachedTokens + 1 >= engine.Config.MaxPositionEmbeddings) break;
                // Drawn where the logits are (the token sampler.Next would draw from them on the host).
                token = engine.DecodeTokens([(sequence, token)], [sampler.Draw()])[0];
            }
            decodeClock.Stop();
        }
        else ttft = clock.Elapsed.TotalMilliseconds;
        int decodeSteps = Math.Max(0, output.Count - 1);
        // Measured after decoding so the exact reference run stays out of the timings.
        ApproximationReport? approximation = null;
        if (prefill.Blocks is { } blocks)
        {
            double? error = null;
            bool? agrees = null;
            if (request.MeasureError) (error, agrees) = engine.CompareWithExact(newTokens, promptLogits[^vocab..]);
            approximation = new ApproximationReport(blocks.QueryTokens, blocks.AnchorTokens, blocks.PassingTokens,
                Enumerable.Range(0, blocks.Ranks).Select(blocks.BlockLength).ToArray(), error, agrees);
        }
        return new GenerationResult(output, finish, request.PromptTokens.Length, cachedBefore, prefill.Strategy, prefill.Choice,
            promptLogits, ttft, decodeSteps == 0 ? 0 : decodeClock.Elapsed.TotalMilliseconds / decodeSteps, approximation);
    }

    /// <summary>
    /// The error of approximate last-position logits against an exact prefill of the same tokens on the
    /// same ranks (pass-KV; dense on one rank), in a scratch sequence released afterwards.
    /// </summary>
    public static (double RelativeError, bool Top1Agrees) CompareWithExact(this InferenceEngine engine, int[] tokens, float[] approximate)
    {
        var scratch = engine.NewSequence();
        try
        {
            var exact = engine.Prefill([(scratch, tokens)], engine.Ranks == 1 ? StrategyNames.Dense : StrategyNames.PassKv).Logits[0];
            double num = 0, den = 0;
            for (int i = 0; i < exact.Length; i++)
            {
                double e = approximate[i] - (double)exact[i];
                num += e * e;
                den += (double)exact[i] * exact[i];
            }
            return (Math.Sqrt(num / Math.Max(den, 1e-300)), Sampler.ArgMax(approximate) == Sampler.ArgMax(exact));
        }
        finally
        {
            engine.Release(scratch);
        }
    }

    /// <summary>
    /// The part of a conversation's tokens the sequence has not cached. The cached tokens must be a
    /// prefix of the conversation; a conversation that changed its past starts over.
    /// </summary>
    public static int[] UncachedSuffix(Sequence sequence, int[] conversation)
    {
        var cached = sequence.Tokens;
        if (cached.Count >= conversation.Length || !conversation.AsSpan(0, cached.Count).SequenceEqual(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(cached)))
            throw new LongCtxException($"the conversation does not extend its cached {cached.Count} tokens: start a new conversation");
        return conversation[cached.Count..];
    }
}
