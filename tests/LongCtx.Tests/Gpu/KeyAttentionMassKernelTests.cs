using LongCtx.Backends;
using LongCtx.Backends.Cpu;
using LongCtx.Cuda.Ops;
using LongCtx.Tensors;
using LongCtx.Tests.ContextParallel;
using static LongCtx.Tests.Gpu.AttentionComparison;

namespace LongCtx.Tests.Gpu;

/// <summary>
/// APB's query-attention scores on the GPU (Kernels/key_attention_mass.cu, on tensor cores) against the CPU backend's,
/// with fresh random bf16 inputs: key counts that fill the kernel's 64-key tiles and that do not, query rows past a
/// warp's 16 and a block's 64, GQA groups of 1 and 4, head dims 16 to 128, two sequences, keys a query must not see
/// (a later position, another sequence) and a query row that sees no key at all. Each query row that sees a key spreads
/// a mass of exactly 1 per head over the keys, which the GPU's totals must show too.
/// </summary>
public class KeyAttentionMassKernelTests
{
    [GpuTheory]
    [InlineData(64, 32, 8, 128, 8192)]  // APB's shape: the embedded query against a block's candidates
    [InlineData(5, 4, 4, 128, 65)]
    [InlineData(17, 4, 1, 64, 1000)]
    [InlineData(70, 8, 2, 16, 63)]
    [InlineData(1, 2, 2, 32, 1)]
    public void TheGpuMassMatchesTheCpu(int queries, int heads, int kvHeads, int headDim, int keys)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        string where = $"seed {seed}: q [{queries}, {heads}, {headDim}] against k [{keys}, {kvHeads}, {headDim}]";
        float[] q = RandomBf16(random, queries * heads * headDim), k = RandomBf16(random, keys * kvHeads * headDim);
        // A quarter of the keys in sequence 1; the first query (of several) in sequence 2, where no key is.
        var keyLayout = new TokenLayout(Enumerable.Range(0, keys).Select(_ => random.Next(4) == 0 ? 1 : 0).ToArray(), Enumerable.Range(0, keys).ToArray());
        var queryLayout = new TokenLayout(Enumerable.Range(0, queries).Select(i => i == 0 && queries > 1 ? 2 : random.Next(2)).ToArray(),
            Enumerable.Range(0, queries).Select(_ => random.Next(keys + keys / 4 + 1)).ToArray());
        float scale = 1f / MathF.Sqrt(headDim);
        float[] Mass(IBackend b)
        {
            using var qt = b.Upload<float>(q, queries, heads, headDim);
            using var kt = b.Upload<float>(k, keys, kvHeads, headDim);
            using var mass = b.Allocate(DType.F32, keys, kvHeads);
            b.KeyAttentionMass(qt, queryLayout, kt, keyLayout, scale, mass);
            var result = new float[mass.Length];
            b.Download<float>(mass, result);
            return result;
        }
        using var cpu = new CpuBackend();
        using var gpu = new CudaBackend(0);
        float[] expected = Mass(cpu), actual = Mass(gpu);
        double error = DenseReference.RelativeError(actual, expected);
        Assert.True(error < 1e-2, $"{where}: GPU vs CPU {error:e2}");

        int group = heads / kvHeads;
        int seeing = Enumerable.Range(0, queries).Count(i =>
            Enumerable.Range(0, keys).Any(j => keyLayout.SeqIds[j] == queryLayout.SeqIds[i] && keyLayout.Positions[j] <= queryLayout.Positions[i]));
        for (int g = 0; g < kvHeads; g++)
        {
            double total = Enumerable.Range(0, keys).Sum(j => (double)actual[j * kvHeads + g]);
            Assert.True(Math.Abs(total - seeing * group) <= 1e-3 * Math.Max(1, seeing * group), $"{where}: KV head {g} holds a mass of {total}, not {seeing * group}");
        }
    }
}
