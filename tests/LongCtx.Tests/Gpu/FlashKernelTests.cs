using LongCtx.Backends.Cpu;
using LongCtx.Cuda.Attention;
using LongCtx.Cuda.Ops;
using LongCtx.Tensors;
using LongCtx.Tests.ContextParallel;
using static LongCtx.Tests.Gpu.AttentionComparison;

namespace LongCtx.Tests.Gpu;

/// <summary>
/// The own flash-attention kernel (Kernels/attention.cu) against the CPU backend with fresh random bf16 inputs,
/// on what the ring tests do not reach: head dims 16 to 256 (one MMA tile per warp past 128), GQA groups 1 to 8,
/// keys in scattered order with padding rows (APB's passing block), two sequences in one call, rows that see
/// nothing, query tiles cut by the end of the rows, and a few queries over many keys (the split-K path and its
/// merge). Outputs and LSEs within the tolerances of <see cref="AttentionComparison"/>; the kernel must actually have run. At head dim 128 on
/// Hopper both own kernels run (Kernels/attention_wgmma.cu and Kernels/attention.cu) on the same inputs.
/// </summary>
public class FlashKernelTests
{
    [GpuTheory]
    [InlineData(128, 8, 2, "causal")]
    [InlineData(256, 4, 4, "causal")]
    [InlineData(80, 4, 1, "scattered")]
    [InlineData(16, 2, 2, "scattered")]
    [InlineData(256, 4, 2, "scattered")]
    [InlineData(64, 8, 8, "split")]
    [InlineData(128, 8, 2, "split")]
    public void MatchesTheCpu(int headDim, int heads, int kvHeads, string layout)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        string where = $"seed {seed}, head dim {headDim}, {heads}/{kvHeads} heads, {layout}";
        var (queries, keys) = Layouts(layout, random);
        var q = RandomBf16(random, queries.Count * heads * headDim);
        var k = RandomBf16(random, keys.Count * kvHeads * headDim);
        var v = RandomBf16(random, keys.Count * kvHeads * headDim);
        using var cpu = new CpuBackend();
        using var gpu = new CudaBackend(0, AttentionImplementation.Kernel);
        var (cpuOut, cpuLse) = Run(cpu, heads, kvHeads, headDim, q, queries, k, v, keys);
        var (gpuOut, gpuLse) = Run(gpu, heads, kvHeads, headDim, q, queries, k, v, keys);
        Assert.True(gpu.AttentionPaths.Flash.Calls == 1, $"{where}: the own kernel did not run ({gpu.AttentionPaths.Flash.Calls} calls)");
        Assert.True(DenseReference.RelativeError(gpuOut, cpuOut) < OutputTolerance, $"{where}: output vs CPU {DenseReference.RelativeError(gpuOut, cpuOut):e2}");
        Assert.True(LseError(gpuLse, cpuLse, where) < LseTolerance, $"{where}: LSE vs CPU {LseError(gpuLse, cpuLse, where):e2}");
    }

    [GpuTheory]
    [InlineData(8, 2, "causal")]
    [InlineData(4, 1, "scattered")]
    [InlineData(8, 2, "split")]
    [InlineData(8, 8, "long")]
    public void BothKernelsMatchTheCpuAtHeadDim128(int heads, int kvHeads, string layout)
    {
        const int headDim = 128;
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var (queries, keys) = Layouts(layout, random);
        var q = RandomBf16(random, queries.Count * heads * headDim);
        var k = RandomBf16(random, keys.Count * kvHeads * headDim);
        var v = RandomBf16(random, keys.Count * kvHeads * headDim);
        using var cpu = new CpuBackend();
        var (cpuOut, cpuLse) = Run(cpu, heads, kvHeads, headDim, q, queries, k, v, keys);
        foreach (bool wgmma in new[] { true, false })
        {
            string where = $"seed {seed}, {heads}/{kvHeads} heads, {layout}, {(wgmma ? "wgmma" : "mma.sync")} kernel";
            using var gpu = new CudaBackend(0, AttentionImplementation.Kernel);
            gpu.AttentionSettings = gpu.AttentionSettings with { Wgmma = wgmma };
            bool hopper = gpu.Device.ComputeMajor == 9 && gpu.Device.ComputeMinor == 0;
            var (gpuOut, gpuLse) = Run(gpu, heads, kvHeads, headDim, q, queries, k, v, keys);
            Assert.True(gpu.AttentionPaths.Flash.Calls == 1, $"{where}: the own kernel did not run ({gpu.AttentionPaths.Flash.Calls} calls)");
            Assert.True(gpu.AttentionPaths.Flash.WgmmaCalls == (wgmma && hopper ? 1 : 0), $"{where}: {gpu.AttentionPaths.Flash.WgmmaCalls} wgmma calls");
            Assert.True(DenseReference.RelativeError(gpuOut, cpuOut) < OutputTolerance, $"{where}: output vs CPU {DenseReference.RelativeError(gpuOut, cpuOut):e2}");
            Assert.True(LseError(gpuLse, cpuLse, where) < LseTolerance, $"{where}: LSE vs CPU {LseError(gpuLse, cpuLse, where):e2}");
        }
    }

    private static (TokenLayout Queries, TokenLayout Keys) Layouts(string layout, Random random)
    {
        switch (layout)
        {
            case "causal":
                // Two sequences of 300 and 517 tokens, each causal over itself: the last query tile is cut short.
                var seq = Enumerable.Repeat(0, 300).Concat(Enumerable.Repeat(1, 517)).ToArray();
                var pos = Enumerable.Range(0, 300).Concat(Enumerable.Range(0, 517)).ToArray();
                return (new TokenLayout(seq, pos), new TokenLayout(seq, pos));
            case "scattered":
            {
                // Keys of two sequences in random order with padding rows among them; queries at random positions,
                // some of a sequence without keys (they see nothing).
                int n = 900;
                var keySeq = new int[n];
                var keyPos = new int[n];
                var order = Enumerable.Range(0, n).OrderBy(_ => random.Next()).ToArray();
                for (int i = 0; i < n; i++)
                {
                    keySeq[i] = order[i] % 10 == 9 ? -1 : order[i] % 2;
                    keyPos[i] = order[i] / 2;
                }
                int m = 333;
                var querySeq = Enumerable.Range(0, m).Select(_ => random.Next(3)).ToArray();
                var queryPos = Enumerable.Range(0, m).Select(_ => random.Next(500)).ToArray();
                return (new TokenLayout(querySeq, queryPos), new TokenLayout(keySeq, keyPos));
            }
            case "long":
            {
                // Two causal sequences of 1,000 and 700 tokens: key tiles wholly visible, on the diagonal, hidden,
                // and across the two sequences.
                var seqs = Enumerable.Repeat(0, 1000).Concat(Enumerable.Repeat(1, 700)).ToArray();
                var positions = Enumerable.Range(0, 1000).Concat(Enumerable.Range(0, 700)).ToArray();
                return (new TokenLayout(seqs, positions), new TokenLayout(seqs, positions));
            }
            case "split":
            {
                // 40 new tokens after 3,000 cached ones: few queries over many keys.
                var keys = Enumerable.Range(0, 3040).ToArray();
                var queries = Enumerable.Range(3000, 40).ToArray();
                return (new TokenLayout(new int[40], queries), new TokenLayout(new int[3040], keys));
            }
            default: throw new ArgumentException(layout);
        }
    }
}
