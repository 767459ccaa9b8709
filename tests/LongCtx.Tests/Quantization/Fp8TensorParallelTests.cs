using LongCtx.Backends.Cpu;
using LongCtx.ContextParallel;
using LongCtx.Model;
using LongCtx.Tensors;

namespace LongCtx.Tests.Quantization;

/// <summary>
/// FP8 checkpoints with each layer split over two tensor-parallel ranks, under one and two context ranks (the paper's
/// CP across nodes × TP inside a node with row-wise FP8 weights). A column-parallel rank keeps its rows' weight scales
/// and quantises the whole input as one rank would; a row-parallel rank (o, down) quantises its slice of the input per
/// token with a scale of its own, as vLLM does. So a static input scale leaves every quantised value as on one rank
/// and the float64 references hold as they are; a dynamic one changes o's and down's codes, and the check is
/// teacher-forced: on the reference's codes (each rank its columns of them, with the row's scale) every format gives the
/// reference's logits to float32 accuracy, and no slice's own scale exceeds its row's while the largest equals it.
/// </summary>
public class Fp8TensorParallelTests
{
    public static TheoryData<string, int, string> StaticCases() => Layouts(["tiny-llama-fp8-ct-tensor", "tiny-qwen3-fp8-ct-tensor"]);

    public static TheoryData<string, int, string> EveryFormat() =>
        Layouts(Fp8Fixture.Checkpoints().Where(name => !name.EndsWith("-fp8-block", StringComparison.Ordinal)));

    private static TheoryData<string, int, string> Layouts(IEnumerable<string> names)
    {
        var data = new TheoryData<string, int, string>();
        foreach (string name in names)
        {
            data.Add(name, 1, StrategyNames.Dense);
            data.Add(name, 2, StrategyNames.PassKv);
            data.Add(name, 2, StrategyNames.PassQ);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(StaticCases))]
    public void StaticInputScalesMatchTheReferenceOnTwoTensorRanks(string name, int ranks, string strategy)
    {
        var f = new Fp8Fixture(name);
        var (error, argmaxMismatches, greedy) = Fp8ModelTests.Run(f, ranks, strategy, hook: null, tensorRanks: 2);
        Assert.True(error < 1e-3, $"{name} {ranks}x2 {strategy}: logits relative error {error:e2}");
        Assert.True(argmaxMismatches == 0, $"{name} {ranks}x2 {strategy}: argmax differs at {argmaxMismatches} positions");
        Assert.Equal(f.Reference.Greedy16, greedy);
    }

    [Theory]
    [MemberData(nameof(EveryFormat))]
    public void OnTheReferencesCodesTwoTensorRanksGiveItsLogits(string name, int ranks, string strategy)
    {
        var f = new Fp8Fixture(name);
        var hook = new ReferenceCodes(f, substitute: true);
        var (error, argmaxMismatches, greedy) = Fp8ModelTests.Run(f, ranks, strategy, hook, tensorRanks: 2);
        Assert.True(hook.Mismatches.Count == 0, $"{name}: {string.Join("; ", hook.Mismatches)}");
        Assert.True(hook.NearTieFlips * 10_000 < hook.Compared, $"{name}: {hook.NearTieFlips} near-tie flips of {hook.Compared} codes");
        Assert.Equal(f.Sites.Keys.Order(), hook.SitesSeen.Order());
        if (hook.SliceRows > 0)
            Assert.True(hook.MaxSliceScaleError < 3e-6, $"{name}: the largest slice scale of a row is {hook.MaxSliceScaleError:e2} from the row's");
        Assert.True(error < 1e-6, $"{name} {ranks}x2 {strategy} on the reference's codes: logits relative error {error:e2}");
        Assert.Equal(0, argmaxMismatches);
        Assert.Equal(f.Reference.Greedy16, greedy);
    }

    /// <summary>
    /// A 128 × 128-block weight split into whole blocks both ways (the fixtures' widths cannot be): a column-parallel
    /// rank's output rows are the whole layer's, bit for bit, and the row-parallel ranks' partial sums add up to it.
    /// Every block has a scale of its own (its values scaled by 1 + row block + 3 · column block), so a rank that took
    /// another block's scales would be off by far more than float32 sums.
    /// </summary>
    [Fact]
    public void BlockWeightsSplitIntoWholeBlocksGiveTheWholeLayersOutput()
    {
        var owners = new List<IDisposable>();
        try
        {
            int n = 256, k = 512, t = 5, seed = Random.Shared.Next();
            var (_, values) = Fp8TestWeights.Floats(n, k, seed, owners);
            for (int i = 0; i < n; i++)
                for (int j = 0; j < k; j++) values[i * k + j] *= 1 + i / 128 + 3 * (j / 128);
            var w = Fp8TestWeights.Blocks(values, n, k, owners);
            var random = new Random(seed);
            var x = Enumerable.Range(0, t * k).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            using var cpu = new CpuBackend(1);
            var whole = Linear(cpu, x, t, w);

            for (int r = 0; r < 2; r++)
            {
                var part = Linear(cpu, x, t, TensorParallelWeights.Rows(w, r * 128, 128));
                for (int i = 0; i < t; i++)
                    for (int j = 0; j < 128; j++)
                        Assert.True(part[i * 128 + j] == whole[i * n + r * 128 + j], $"seed {seed}: output rows of rank {r}: [{i}, {j}] {part[i * 128 + j]} against {whole[i * n + r * 128 + j]}");
            }

            var sum = new double[t * n];
            for (int r = 0; r < 2; r++)
            {
                var slice = new float[t * 256];
                for (int i = 0; i < t; i++) Array.Copy(x, i * k + r * 256, slice, i * 256, 256);
                var part = Linear(cpu, slice, t, TensorParallelWeights.Columns(w, r * 256, 256, owners));
                for (int i = 0; i < sum.Length; i++) sum[i] += part[i];
            }
            double error = sum.Zip(whole, (a, b) => Math.Abs(a - b)).Max() / whole.Max(v => Math.Abs((double)v));
            Assert.True(error < 1e-6, $"seed {seed}: row-parallel partial sums against the whole layer: {error:e2} relative");
        }
        finally
        {
            foreach (var o in owners) o.Dispose();
        }
    }

    private static float[] Linear(CpuBackend cpu, float[] x, int t, HostTensor weight)
    {
        int k = weight.Shape[1], n = weight.Shape[0];
        using var input = cpu.Upload<float>(x, t, k);
        using var w = cpu.LoadWeight(weight);
        using var y = cpu.Allocate(DType.F32, t, n);
        cpu.Linear(input, w, null, y);
        var result = new float[t * n];
        cpu.Download<float>(y, result);
        return result;
    }
}
