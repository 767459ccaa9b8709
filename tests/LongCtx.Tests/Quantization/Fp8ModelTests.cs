using LongCtx.ContextParallel;

namespace LongCtx.Tests.Quantization;

/// <summary>
/// Every FP8 checkpoint of tests/data/fp8 (compressed-tensors per channel and static per tensor, fbgemm_fp8, 128 × 128
/// blocks, the ct KV-cache scheme; the bf16 one under <c>--quantization fp8</c>) against its float64 reference that
/// emulates the format's arithmetic, on one rank and on four with each ring: the 32 prompt positions' logits within 1e-3
/// relative (max |a − e| / max |e|), the argmax at every position, the 16 greedy tokens. Then the same runs teacher-forced
/// (<see cref="ReferenceCodes"/>): every code the engine makes equals the reference's except at near-ties, and on the
/// reference's codes the logits agree to float32 accuracy.
/// </summary>
public class Fp8ModelTests
{
    public static TheoryData<string, int, string> Cases()
    {
        var data = new TheoryData<string, int, string>();
        foreach (string name in Fp8Fixture.Checkpoints())
        {
            data.Add(name, 1, StrategyNames.Dense);
            data.Add(name, 4, StrategyNames.PassKv);
            data.Add(name, 4, StrategyNames.PassQ);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesItsReference(string name, int ranks, string strategy)
    {
        var f = new Fp8Fixture(name);
        var (error, argmaxMismatches, greedy) = Run(f, ranks, strategy, hook: null);
        Assert.True(error < 1e-3, $"{name} N={ranks} {strategy}: logits relative error {error:e2}");
        Assert.True(argmaxMismatches == 0, $"{name} N={ranks} {strategy}: argmax differs at {argmaxMismatches} positions");
        Assert.Equal(f.Reference.Greedy16, greedy);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MakesTheReferencesCodesAndRunsOnThem(string name, int ranks, string strategy)
    {
        var f = new Fp8Fixture(name);
        var hook = new ReferenceCodes(f, substitute: true);
        var (error, argmaxMismatches, greedy) = Run(f, ranks, strategy, hook);
        Assert.True(hook.Mismatches.Count == 0, $"{name}: codes differ away from a rounding boundary: {string.Join("; ", hook.Mismatches)}");
        Assert.True(hook.NearTieFlips * 10_000 < hook.Compared, $"{name}: {hook.NearTieFlips} near-tie flips of {hook.Compared} codes");
        Assert.True(hook.MaxScaleError < 1e-6, $"{name}: scales differ from the reference's by {hook.MaxScaleError:e2} relative");
        Assert.Equal(f.Sites.Keys.Order(), hook.SitesSeen.Order());
        Assert.True(error < 2e-5, $"{name} N={ranks} {strategy} on the reference's codes: logits relative error {error:e2}");
        Assert.Equal(0, argmaxMismatches);
        Assert.Equal(f.Reference.Greedy16, greedy);
    }

    /// <summary>The prompt's 32 positions' logits against logits_all (max-abs relative), argmax mismatches, and the greedy continuation.</summary>
    internal static (double Error, int ArgmaxMismatches, List<int> Greedy) Run(Fp8Fixture f, int ranks, string strategy, ReferenceCodes? hook, int tensorRanks = 1)
    {
        var (engine, weights) = f.Open(ranks, hook, tensorRanks: tensorRanks);
        using var _ = weights;
        using var __ = engine;
        var r = f.Reference;
        int vocab = r.Config.VocabSize, n = r.InputIds.Length;
        var sequence = engine.NewSequence();
        var prefill = engine.Prefill([(sequence, r.InputIds)], strategy, keepLast: n, argmaxAll: true);
        double error = MaxRelative(prefill.Logits[0], f.LogitsAll);
        int mismatches = prefill.ArgmaxAll![0].Zip(r.ArgmaxAll, (a, b) => a == b ? 0 : 1).Sum();
        var greedy = r.GreedyContinuation(engine, sequence, prefill.Logits[0].AsSpan((n - 1) * vocab).ToArray());
        return (error, mismatches, greedy);
    }

    public static double MaxRelative(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        double num = 0, den = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            num = Math.Max(num, Math.Abs(actual[i] - (double)expected[i]));
            den = Math.Max(den, Math.Abs((double)expected[i]));
        }
        return num / den;
    }
}
