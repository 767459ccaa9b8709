using LongCtx.Backends.Cpu;
using LongCtx.ContextParallel;
using LongCtx.Cuda.Attention;
using LongCtx.Cuda.Ops;
using LongCtx.Tests.ContextParallel;
using static LongCtx.Tests.Gpu.AttentionComparison;

namespace LongCtx.Tests.Gpu;

/// <summary>
/// cuDNN's fused attention against the own kernel and the CPU backend on the layouts ring steps produce
/// (load-balanced shards, with and without a cached prefix, two sequences fused), with fresh random bf16
/// inputs: outputs and LSEs within the tolerances of <see cref="AttentionComparison"/>, and cuDNN must actually have run. A small
/// row limit per call makes the causal blocks run as many row slices;
/// </summary>
public class CudnnAttentionTests
{
    private const int Heads = 4, KvHeads = 2, HeadDim = 64, Rows16K = 16384;

    [GpuTheory]
    [InlineData(2, 0, Rows16K)]
    [InlineData(3, 0, CudnnCallPlan.AutoRows)]
    [InlineData(4, 100, Rows16K)]
    [InlineData(2, 0, 256)]
    [InlineData(3, 100, 128)]
    [InlineData(3, 100, 0)]
    public void RingLayoutsMatchTheKernelAndTheCpu(int ranks, int cachedPrefix, int causalRowsPerCall)
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
        gpu.AttentionSettings = gpu.AttentionSettings with { CudnnCalls = new CudnnCallPlan(causalRowsPerCall, 0) };
        using var cpu = new CpuBackend();
        foreach (var queries in plan.Shards)
            foreach (var keys in plan.Shards)
            {
                string where = $"seed {seed}, {ranks} ranks, at most {causalRowsPerCall} causal rows a call, queries of rank {queries.Rank}, KV of rank {keys.Rank}";
                var q = RandomBf16(random, queries.Rows * Heads * HeadDim);
                var k = RandomBf16(random, keys.Keys.Count * KvHeads * HeadDim);
                var v = RandomBf16(random, keys.Keys.Count * KvHeads * HeadDim);
                var (cpuOut, cpuLse) = Run(cpu, Heads, KvHeads, HeadDim, q, queries.Queries, k, v, keys.Keys);
                gpu.AttentionSettings = gpu.AttentionSettings with { Implementation = AttentionImplementation.Kernel };
                var (kernelOut, kernelLse) = Run(gpu, Heads, KvHeads, HeadDim, q, queries.Queries, k, v, keys.Keys);
                gpu.AttentionSettings = gpu.AttentionSettings with { Implementation = AttentionImplementation.Auto };
                long before = gpu.AttentionPaths.Cudnn.Calls;
                var (cudnnOut, cudnnLse) = Run(gpu, Heads, KvHeads, HeadDim, q, queries.Queries, k, v, keys.Keys);
                Assert.True(gpu.AttentionPaths.Cudnn.Calls == before + 1, $"{where}: cuDNN did not run: {gpu.AttentionPaths.Cudnn.Refusal}");

                Assert.True(DenseReference.RelativeError(cudnnOut, cpuOut) < OutputTolerance, $"{where}: cuDNN output vs CPU {DenseReference.RelativeError(cudnnOut, cpuOut):e2}");
                Assert.True(DenseReference.RelativeError(cudnnOut, kernelOut) < OutputTolerance, $"{where}: cuDNN output vs kernel {DenseReference.RelativeError(cudnnOut, kernelOut):e2}");
                Assert.True(LseError(cudnnLse, cpuLse, where) < LseTolerance, $"{where}: cuDNN LSE vs CPU {LseError(cudnnLse, cpuLse, where):e2}");
                Assert.True(LseError(cudnnLse, kernelLse, where) < LseTolerance, $"{where}: cuDNN LSE vs kernel {LseError(cudnnLse, kernelLse, where):e2}");
            }
    }
}
