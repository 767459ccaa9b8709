using LongCtx.Backends;
using LongCtx.Backends.Cpu;
using LongCtx.Cuda.Ops;
using LongCtx.Tensors;
using LongCtx.Tests.ContextParallel;
using static LongCtx.Tests.Cuda.TestLayouts;
using static LongCtx.Tests.Gpu.AttentionComparison;

namespace LongCtx.Tests.Gpu;

/// <summary>
/// Attention over an FP8 KV cache on the GPU against the CPU backend's (codes stored with the same scales, read as code ·
/// scale): decode rows through decode.cu built with KV_FP8 (the kernel must have run), and a prefill block through
/// the bf16 paths fed the codes' values with the scales folded in. Bf16 random inputs; output within 2e-2 and LSE within
/// 1e-2 relative, as the bf16 decode tests.
/// </summary>
public class Fp8AttentionTests
{
    [GpuTheory]
    [InlineData(1, 5000, 32, 8, 128, 0.03125f, 0.0625f)]    // one token decoding, the 8B shape
    [InlineData(3, 777, 8, 2, 64, 1f, 1f)]                   // three new tokens: a causal block over the cache
    [InlineData(256, 2048, 32, 8, 128, 0.046875f, 0.0234375f)] // a prefill block: the bf16 paths on the codes' values
    public void AttentionOnAnFp8CacheMatchesTheCpu(int rows, int cacheRows, int heads, int kvHeads, int headDim, float kScale, float vScale)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var queries = Sequence(0, cacheRows - rows, rows);
        var keys = Sequence(0, 0, cacheRows);
        var q = RandomBf16(random, rows * heads * headDim);
        // Keys and values spread so that the scales are used over much of the e4m3 range.
        var k = RandomBf16(random, cacheRows * kvHeads * headDim).Select(x => x * 4f * kScale * 30f).ToArray();
        var v = RandomBf16(random, cacheRows * kvHeads * headDim).Select(x => x * 4f * vScale * 30f).ToArray();
        k = Bf16(k);
        v = Bf16(v);
        (float[] Output, float[] Lse) Run(IBackend b)
        {
            using var qt = b.Upload<float>(q, rows, heads, headDim);
            using var kf = b.Upload<float>(k, cacheRows, kvHeads, headDim);
            using var vf = b.Upload<float>(v, cacheRows, kvHeads, headDim);
            using var kc = b.Allocate(DType.F8E4M3, cacheRows, kvHeads, headDim);
            using var vc = b.Allocate(DType.F8E4M3, cacheRows, kvHeads, headDim);
            kc.Scale = kScale;
            vc.Scale = vScale;
            b.Copy(kf, kc);
            b.Copy(vf, vc);
            using var output = b.Allocate(b.ActivationType, rows, heads, headDim);
            using var lse = b.Allocate(DType.F32, rows, heads);
            b.Attention(qt, queries, kc, vc, keys, AttentionRule.ForHeadDim(headDim), output, lse);
            var o = new float[output.Length];
            var l = new float[lse.Length];
            b.Download<float>(output, o);
            b.Download<float>(lse, l);
            return (o, l);
        }
        using var cpu = new CpuBackend();
        using var gpu = new CudaBackend(0);
        var (expectedOut, expectedLse) = Run(cpu);
        long decodes = gpu.AttentionPaths.Decode.Calls;
        var (actualOut, actualLse) = Run(gpu);
        string where = $"seed {seed}, {rows} rows over {cacheRows} keys, {heads} heads on {kvHeads} of dim {headDim}, scales {kScale}/{vScale}";
        Assert.Equal(decodes + (rows <= 16 ? 1 : 0), gpu.AttentionPaths.Decode.Calls);
        double outError = DenseReference.RelativeError(actualOut, expectedOut), lseError = LseError(actualLse, expectedLse, where);
        Assert.True(outError < 2e-2, $"{where}: output vs CPU {outError:e2}");
        Assert.True(lseError < 1e-2, $"{where}: LSE vs CPU {lseError:e2}");
    }

    /// <summary>
    /// <c>--attention-dtype fp8</c>: cuDNN's FP8 SDPA on Q, K and V quantised per tensor (or the FP8 cache's codes) must
    /// have run every call, unmasked, square causal and a causal slice with more keys than rows (run as its two parts,
    /// merged), and stay within FP8's error of the CPU's float32 attention: output within 1e-1, LSE within 5e-2 relative.
    /// </summary>
    [GpuTheory]
    [InlineData(1024, 1024, false, false)]
    [InlineData(1024, 1024, true, false)]
    [InlineData(512, 2048, true, false)]
    [InlineData(1024, 3072, true, true)]
    public void Fp8AttentionStaysWithinFp8sError(int rows, int keyRows, bool causal, bool fp8Cache)
    {
        const int heads = 32, kvHeads = 8, headDim = 128;
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var queries = causal ? Sequence(0, keyRows - rows, rows) : Sequence(0, keyRows, rows);
        var keys = Sequence(0, 0, keyRows);
        var q = RandomBf16(random, rows * heads * headDim);
        var k = RandomBf16(random, keyRows * kvHeads * headDim);
        var v = RandomBf16(random, keyRows * kvHeads * headDim);
        using var cpu = new CpuBackend();
        using var gpu = new CudaBackend(0);
        gpu.AttentionSettings = gpu.AttentionSettings with { Fp8 = true };
        var (expectedOut, expectedLse) = Run(cpu, heads, kvHeads, headDim, q, queries, k, v, keys);
        long before = gpu.AttentionPaths.Cudnn.Fp8Calls;
        float[] actualOut, actualLse;
        if (!fp8Cache) (actualOut, actualLse) = Run(gpu, heads, kvHeads, headDim, q, queries, k, v, keys);
        else
        {
            // K and V stored in an FP8 cache with scale 1/64 (|x| ≤ 2 within e4m3's range), read by cuDNN as codes.
            using var qt = gpu.Upload<float>(q, rows, heads, headDim);
            using var kf = gpu.Upload<float>(k, keyRows, kvHeads, headDim);
            using var vf = gpu.Upload<float>(v, keyRows, kvHeads, headDim);
            using var kc = gpu.Allocate(DType.F8E4M3, keyRows, kvHeads, headDim);
            using var vc = gpu.Allocate(DType.F8E4M3, keyRows, kvHeads, headDim);
            kc.Scale = vc.Scale = 1f / 64;
            gpu.Copy(kf, kc);
            gpu.Copy(vf, vc);
            using var output = gpu.Allocate(DType.BF16, rows, heads, headDim);
            using var lse = gpu.Allocate(DType.F32, rows, heads);
            gpu.Attention(qt, queries, kc, vc, keys, AttentionRule.ForHeadDim(headDim), output, lse);
            actualOut = new float[output.Length];
            actualLse = new float[lse.Length];
            gpu.Download<float>(output, actualOut);
            gpu.Download<float>(lse, actualLse);
        }
        string where = $"seed {seed}, {rows} rows over {keyRows} keys, {(causal ? "causal" : "unmasked")}{(fp8Cache ? ", FP8 cache" : "")}; {gpu.AttentionReport()}";
        Assert.True(gpu.AttentionPaths.Cudnn.Fp8Calls == before + 1, $"{where}: cuDNN's FP8 SDPA did not run the call");
        double outError = DenseReference.RelativeError(actualOut, expectedOut), lseError = LseError(actualLse, expectedLse, where);
        Assert.True(outError < 1e-1, $"{where}: output vs CPU {outError:e2}");
        Assert.True(lseError < 5e-2, $"{where}: LSE vs CPU {lseError:e2}");
    }

    private static float[] Bf16(float[] x) => x.Select(v => BitConverter.Int32BitsToSingle((int)((BitConverter.SingleToUInt32Bits(v) + 0x7FFFu + ((BitConverter.SingleToUInt32Bits(v) >> 16) & 1)) & 0xFFFF0000u))).ToArray();
}
