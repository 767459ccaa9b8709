using LongCtx.Backends;
using LongCtx.Backends.Cpu;
using LongCtx.Cuda.Attention;
using LongCtx.Cuda.Ops;
using LongCtx.Tensors;
using LongCtx.Tests.ContextParallel;
using static LongCtx.Tests.Gpu.AttentionComparison;

namespace LongCtx.Tests.Gpu;

/// <summary>
/// Every GPU attention path under the model families' rule against the CPU backend, with fresh random bf16 inputs
/// (outputs within 2e-2, LSEs within 1e-2 relative; the path must actually have run): sliding windows and soft caps
/// in the own flash kernels (attention.cu at head dims 32 to 256, attention_wgmma.cu at 128), cuDNN's band and soft cap
/// on a windowed prefill, a halo block and row slices, and the decode kernels reading a windowed cache.
/// </summary>
public class WindowedAttentionGpuTests
{
    public static TheoryData<int, int, int, string, int, float> FlashCases() => new()
    {
        { 128, 8, 2, "prefill", 100, 0f },
        { 128, 8, 2, "halo", 128, 0f },
        { 256, 16, 8, "prefill", 1024, 0f },  // Gemma 3 12B's heads, window longer than the call
        { 256, 4, 2, "prefill", 64, 50f },    // Gemma 2's soft cap
        { 32, 4, 2, "cache", 128, 0f },
        { 64, 4, 1, "prefill", 1, 0f },       // every query sees itself only
        { 128, 4, 4, "prefill", 300, 6f },
    };

    [GpuTheory]
    [MemberData(nameof(FlashCases))]
    public void TheFlashKernelsApplyTheWindowAndTheCap(int headDim, int heads, int kvHeads, string layout, int window, float softCap)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var (queries, keys) = Layouts(layout, window, random);
        var rule = new AttentionRule(1f / MathF.Sqrt(headDim), window, softCap > 0 ? softCap : null);
        var (q, k, v, cpuOut, cpuLse) = OnTheCpu(random, queries, keys, heads, kvHeads, headDim, rule);
        foreach (bool wgmma in headDim == 128 ? new[] { true, false } : [false])
        {
            string where = $"seed {seed}, head dim {headDim}, {heads}/{kvHeads} heads, {layout}, {rule}, {(wgmma ? "wgmma" : "mma.sync")}";
            using var gpu = new CudaBackend(0, AttentionImplementation.Kernel);
            gpu.AttentionSettings = gpu.AttentionSettings with { Wgmma = wgmma };
            var (gpuOut, gpuLse) = Run(gpu, heads, kvHeads, headDim, q, queries, k, v, keys, rule);
            Assert.True(gpu.AttentionPaths.Flash.Calls == 1, $"{where}: the own kernel did not run");
            AssertClose(gpuOut, gpuLse, cpuOut, cpuLse, where);
        }
    }

    /// <summary>cuDNN's fused SDPA with the band mask (and the soft cap), whole and in row slices, must run and agree.</summary>
    [GpuTheory]
    [InlineData("prefill", 128, 0f, 0)]
    [InlineData("prefill", 128, 0f, 256)]
    [InlineData("halo", 256, 0f, 0)]
    [InlineData("prefill", 64, 30f, 0)]
    [InlineData("cache", 300, 0f, 0)]
    public void CudnnAppliesTheBandAndTheCap(string layout, int window, float softCap, int rowsPerCall)
    {
        const int headDim = 128, heads = 8, kvHeads = 2;
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var (queries, keys) = Layouts(layout, window, random);
        var rule = new AttentionRule(1f / MathF.Sqrt(headDim), window, softCap > 0 ? softCap : null);
        string where = $"seed {seed}, {layout}, {rule}, {rowsPerCall} rows a call";
        var (q, k, v, cpuOut, cpuLse) = OnTheCpu(random, queries, keys, heads, kvHeads, headDim, rule);
        using var gpu = new CudaBackend(0, AttentionImplementation.Cudnn);
        gpu.AttentionSettings = gpu.AttentionSettings with { CudnnCalls = new CudnnCallPlan(rowsPerCall, 0) };
        Assert.NotNull(AttentionBlocks.Of(queries, keys, window));
        var (gpuOut, gpuLse) = Run(gpu, heads, kvHeads, headDim, q, queries, k, v, keys, rule);
        Assert.True(gpu.AttentionPaths.Cudnn.Calls == 1, $"{where}: cuDNN did not run: {gpu.AttentionPaths.Cudnn.Refusal}");
        AssertClose(gpuOut, gpuLse, cpuOut, cpuLse, where);
    }

    /// <summary>
    /// A band without the causal mask over more than 1024 keys (a halo of a long window, as Mistral's 4096), which cuDNN
    /// 9.14.0 computes wrongly (cudnn-frontend declines it there): whichever path takes it must agree with the CPU, and on
    /// 9.14.0 cuDNN must have declined it naming that bug.
    /// </summary>
    [GpuTheory]
    [InlineData(2048)]
    [InlineData(1100)]
    public void ALongBandWithoutTheCausalMaskMatchesTheCpu(int window)
    {
        const int headDim = 128, heads = 8, kvHeads = 2;
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var (queries, keys) = Layouts("halo", window, random);
        var rule = new AttentionRule(1f / MathF.Sqrt(headDim), window);
        var (q, k, v, cpuOut, cpuLse) = OnTheCpu(random, queries, keys, heads, kvHeads, headDim, rule);
        using var gpu = new CudaBackend(0, AttentionImplementation.Auto);
        var (gpuOut, gpuLse) = Run(gpu, heads, kvHeads, headDim, q, queries, k, v, keys, rule);
        var cudnn = gpu.AttentionPaths.Cudnn;
        string where = $"seed {seed}, halo of {keys.Count} keys, {rule}, cuDNN {cudnn.Version ?? "not loaded"} ran {cudnn.Calls} call(s)";
        AssertClose(gpuOut, gpuLse, cpuOut, cpuLse, where);
        if (cudnn.Version == "9.14.0") Assert.True(cudnn.Calls == 0 && cudnn.Refusal?.Contains("9.14.0 has a known bug") == true, $"{where}: {cudnn.Refusal}");
    }

    /// <summary>
    /// Decode steps of three sequences over windowed caches (each holding a row older than the window, as a sliding-window
    /// layer's cache does): the decode kernels read only the window; soft-capped rows go to the flash kernel.
    /// </summary>
    [GpuTheory]
    [InlineData(128, 8, 2, 0f)]
    [InlineData(256, 16, 8, 0f)]
    [InlineData(32, 4, 2, 0f)]
    [InlineData(128, 8, 2, 50f)]
    public void DecodeReadsTheWindowOfItsCache(int headDim, int heads, int kvHeads, float softCap)
    {
        const int window = 96;
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var rule = new AttentionRule(1f / MathF.Sqrt(headDim), window, softCap > 0 ? softCap : null);
        string where = $"seed {seed}, head dim {headDim}, {heads}/{kvHeads} heads, {rule}";
        var lengths = new[] { 5000, 97, 40 };
        using var cpu = new CpuBackend();
        using var gpu = new CudaBackend(0);
        var q = RandomBf16(random, lengths.Length * heads * headDim);
        var k = lengths.Select(n => RandomBf16(random, Math.Min(n, window + 1) * kvHeads * headDim)).ToArray();
        var v = lengths.Select(n => RandomBf16(random, Math.Min(n, window + 1) * kvHeads * headDim)).ToArray();
        float[] Each(IBackend b, out float[] lse)
        {
            using var qt = b.Upload<float>(q, lengths.Length, heads, headDim);
            using var output = b.Allocate(b.ActivationType, lengths.Length, heads, headDim);
            using var l = b.Allocate(DType.F32, lengths.Length, heads);
            var caches = lengths.Select((n, s) => (K: b.Upload<float>(k[s], k[s].Length / (kvHeads * headDim), kvHeads, headDim),
                V: b.Upload<float>(v[s], v[s].Length / (kvHeads * headDim), kvHeads, headDim))).ToArray();
            // The cache holds the last W + 1 positions up to the new token's (or all of a shorter sequence).
            var parts = lengths.Select((n, s) => new AttentionPart(s, new TokenLayout([s], [n - 1]), caches[s].K, caches[s].V,
                new TokenLayout(Enumerable.Repeat(s, caches[s].K.Rows).ToArray(), Enumerable.Range(n - caches[s].K.Rows, caches[s].K.Rows).ToArray()))).ToArray();
            b.AttentionEach(qt, output, l, rule, parts);
            foreach (var (ck, cv) in caches) { ck.Dispose(); cv.Dispose(); }
            lse = new float[l.Length];
            b.Download<float>(l, lse);
            var o = new float[output.Length];
            b.Download<float>(output, o);
            return o;
        }
        var cpuOut = Each(cpu, out var cpuLse);
        var gpuOut = Each(gpu, out var gpuLse);
        if (softCap > 0) Assert.True(gpu.AttentionPaths.Decode.Calls == 0 && gpu.AttentionPaths.Flash.Calls > 0, $"{where}: soft-capped rows must go to the flash kernel");
        else Assert.True(gpu.AttentionPaths.Decode.Calls == 1, $"{where}: the decode kernel did not run ({gpu.AttentionPaths.Decode.Calls} calls)");
        AssertClose(gpuOut, gpuLse, cpuOut, cpuLse, where);
    }

    private static void AssertClose(float[] gpuOut, float[] gpuLse, float[] cpuOut, float[] cpuLse, string where)
    {
        Assert.True(DenseReference.RelativeError(gpuOut, cpuOut) < 2e-2, $"{where}: output vs CPU {DenseReference.RelativeError(gpuOut, cpuOut):e2}");
        Assert.True(LseError(gpuLse, cpuLse, where) < 1e-2, $"{where}: LSE vs CPU {LseError(gpuLse, cpuLse, where):e2}");
    }

    /// <summary>
    /// prefill: two sequences, 1,300 and 700 tokens, each over itself; halo: a chunk of 1,000 queries over the W − 1 keys
    /// before it (seen by its first queries only); cache: 600 new tokens after the W cached rows a window keeps, the
    /// oldest of them seen by no query.
    /// </summary>
    /// <summary>Random bf16-valued q, k, v for the layout, and the CPU backend's output and LSE on them: what each GPU path is held to.</summary>
    private static (float[] Q, float[] K, float[] V, float[] Output, float[] Lse) OnTheCpu(Random random, TokenLayout queries, TokenLayout keys,
        int heads, int kvHeads, int headDim, AttentionRule rule)
    {
        var q = RandomBf16(random, queries.Count * heads * headDim);
        var k = RandomBf16(random, keys.Count * kvHeads * headDim);
        var v = RandomBf16(random, keys.Count * kvHeads * headDim);
        using var cpu = new CpuBackend();
        var (output, lse) = Run(cpu, heads, kvHeads, headDim, q, queries, k, v, keys, rule);
        return (q, k, v, output, lse);
    }

    private static (TokenLayout Queries, TokenLayout Keys) Layouts(string layout, int window, Random random)
    {
        switch (layout)
        {
            case "prefill":
                var seq = Enumerable.Repeat(0, 1300).Concat(Enumerable.Repeat(1, 700)).ToArray();
                var pos = Enumerable.Range(0, 1300).Concat(Enumerable.Range(0, 700)).ToArray();
                return (new TokenLayout(seq, pos), new TokenLayout(seq, pos));
            case "halo":
                int start = 5000 + random.Next(100);
                return (new TokenLayout(new int[1000], Enumerable.Range(start, 1000).ToArray()),
                    new TokenLayout(new int[window - 1], Enumerable.Range(start - window + 1, window - 1).ToArray()));
            case "cache":
                int cached = 3000;
                var keys = Enumerable.Range(cached - window, window + 600).ToArray();
                return (new TokenLayout(new int[600], Enumerable.Range(cached, 600).ToArray()), new TokenLayout(new int[keys.Length], keys));
            default: throw new ArgumentException(layout);
        }
    }
}
