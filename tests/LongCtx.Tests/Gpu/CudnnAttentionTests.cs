using LongCtx.Backends;
using LongCtx.Backends.Cpu;
using LongCtx.Cuda;
using LongCtx.Parallel;
using LongCtx.Tensors;
using LongCtx.Tests.Parallel;

namespace LongCtx.Tests.Gpu;

/// <summary>
/// cuDNN's fused attention against the own kernel and the CPU backend on the layouts ring steps produce
/// (load-balanced shards, with and without a cached prefix, two sequences fused), with fresh random bf16
/// inputs: outputs within 2e-2 and LSEs within 1e-2 relative, and cuDNN must actually have run.
/// </summary>
public class CudnnAttentionTests
{
    private const int Heads = 4, KvHeads = 2, HeadDim = 64;

    [GpuTheory]
    [InlineData(2, 0)]
    [InlineData(3, 0)]
    [InlineData(4, 100)]
    public void RingLayoutsMatchTheKernelAndTheCpu(int ranks, int cachedPrefix)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var sequences = new[] { 1200, 700 }.Select((n, id) =>
        {
            var cached = new KvPlacement(ranks);
            for (int p = 0; p < cachedPrefix; p++) cached.Append(p % ranks, [p]);
            return new SequenceInput(id, n, cached);
        }).ToList();
        var plan = ShardPlan.LoadBalanced(sequences, ranks);
        using var gpu = new CudaBackend(0, AttentionImplementation.Auto);
        using var cpu = new CpuBackend();
        foreach (var queries in plan.Shards)
            foreach (var keys in plan.Shards)
            {
                string where = $"seed {seed}, {ranks} ranks, queries of rank {queries.Rank}, KV of rank {keys.Rank}";
                var q = RandomBf16(random, queries.Rows * Heads * HeadDim);
                var k = RandomBf16(random, keys.Keys.Count * KvHeads * HeadDim);
                var v = RandomBf16(random, keys.Keys.Count * KvHeads * HeadDim);
                var (cpuOut, cpuLse) = Run(cpu, q, queries.Queries, k, v, keys.Keys);
                gpu.AttentionMode = AttentionImplementation.Kernel;
                var (kernelOut, kernelLse) = Run(gpu, q, queries.Queries, k, v, keys.Keys);
                gpu.AttentionMode = AttentionImplementation.Auto;
                long before = gpu.CudnnAttentionCalls;
                var (cudnnOut, cudnnLse) = Run(gpu, q, queries.Queries, k, v, keys.Keys);
                Assert.True(gpu.CudnnAttentionCalls == before + 1, $"{where}: cuDNN did not run: {gpu.CudnnRefusal}");

                Assert.True(DenseReference.RelativeError(cudnnOut, cpuOut) < 2e-2, $"{where}: cuDNN output vs CPU {DenseReference.RelativeError(cudnnOut, cpuOut):e2}");
                Assert.True(DenseReference.RelativeError(cudnnOut, kernelOut) < 2e-2, $"{where}: cuDNN output vs kernel {DenseReference.RelativeError(cudnnOut, kernelOut):e2}");
                Assert.True(LseError(cudnnLse, cpuLse) < 1e-2, $"{where}: cuDNN LSE vs CPU {LseError(cudnnLse, cpuLse):e2}");
                Assert.True(LseError(cudnnLse, kernelLse) < 1e-2, $"{where}: cuDNN LSE vs kernel {LseError(cudnnLse, kernelLse):e2}");
            }
    }

    private static (float[] Output, float[] Lse) Run(IBackend b, float[] q, TokenLayout queries, float[] k, float[] v, TokenLayout keys)
    {
        using var qt = b.Upload<float>(q, queries.Count, Heads, HeadDim);
        using var kt = b.Upload<float>(k, keys.Count, KvHeads, HeadDim);
        using var vt = b.Upload<float>(v, keys.Count, KvHeads, HeadDim);
        using var output = b.Allocate(b.ActivationType, queries.Count, Heads, HeadDim);
        using var lse = b.Allocate(DType.F32, queries.Count, Heads);
        b.Attention(qt, queries, kt, vt, keys, 1f / MathF.Sqrt(HeadDim), output, lse);
        var o = new float[output.Length];
        var l = new float[lse.Length];
        b.Download<float>(output, o);
        b.Download<float>(lse, l);
        return (o, l);
    }

    /// <summary>Relative error over the rows that see keys; a row that sees none must be −inf in both.</summary>
    private static double LseError(float[] actual, float[] expected)
    {
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            if (float.IsNegativeInfinity(expected[i]))
            {
                Assert.True(float.IsNegativeInfinity(actual[i]), $"LSE {i}: {actual[i]} where no key is visible");
                continue;
            }
            diff += (double)(actual[i] - expected[i]) * (actual[i] - expected[i]);
            norm += (double)expected[i] * expected[i];
        }
        return norm == 0 ? 0 : Math.Sqrt(diff / norm);
    }

    /// <summary>Uniform in [−2, 2), rounded to bf16 so the CPU computes on exactly the GPU's inputs.</summary>
    private static float[] RandomBf16(Random random, int n)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++)
            x[i] = BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(random.NextSingle() * 4 - 2) & 0xFFFF0000u);
        return x;
    }
}
