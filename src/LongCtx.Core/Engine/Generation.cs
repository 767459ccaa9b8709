using System.Diagnostics;
using System.Runtime.ExceptionServices;
using LongCtx.ContextParallel;
using LongCtx.Sampling;

namespace LongCtx.Engine;

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
    /// Prefills the request's tokens that the sequence has not cached yet, then decodes token by token, calling
    /// onToken as each is drawn: one request through <see cref="EngineLoop"/>, its prefill in steps of its own so the
    /// time to first token is the prefill's. The last drawn token's KV is not cached (it was never fed back);
    /// <see cref="UncachedSuffix"/> picks it up with the next turn.
    /// </summary>
    public static GenerationResult Generate(this InferenceEngine engine, Sequence sequence, GenerationRequest request, Action<int>? onToken = null)
    {
        var loop = new EngineLoop(engine, new PrefillFirst(decodeInSameStep: false));
        var clock = Stopwatch.StartNew();
        var run = loop.Admit(request with { Resume = sequence });
        double ttft = 0;
        var decodeClock = new Stopwatch();
        while (run.Status != RequestStatus.Finished)
        {
            var step = loop.Step(int.MaxValue);
            if (step.Prefilled.Count > 0)
            {
                ttft = clock.Elapsed.TotalMilliseconds;
                decodeClock.Start();
            }
            foreach (var output in step.Outputs)
                if (output.Token is { } token) onToken?.Invoke(token);
        }
        decodeClock.Stop();
        if (run.Error is { } error) ExceptionDispatchInfo.Capture(error).Throw();
        int decodeSteps = Math.Max(0, run.Generated.Count - 1);
        var promptLogits = run.PromptLogits;
        // Measured after decoding so the exact reference run stays out of the timings.
        ApproximationReport? approximation = null;
        if (run.Blocks is { } blocks)
        {
            double? relativeError = null;
            bool? agrees = null;
            if (request.MeasureError) (relativeError, agrees) = engine.CompareWithExact(run.NewTokens, promptLogits[^engine.Config.VocabSize..]);
            approximation = new ApproximationReport(blocks.QueryTokens, blocks.AnchorTokens, blocks.PassingTokens,
                Enumerable.Range(0, blocks.Ranks).Select(blocks.BlockLength).ToArray(), relativeError, agrees);
        }
        return new GenerationResult([.. run.Generated], run.Finish!.Value.ApiName(), request.PromptTokens.Length, run.CachedTokens, run.Strategy, run.Choice,
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
