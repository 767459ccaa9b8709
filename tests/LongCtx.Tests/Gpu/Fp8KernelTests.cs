using System.Runtime.InteropServices;
using LongCtx.Cuda.Ops;
using LongCtx.Cuda.Runtime;
using LongCtx.Model;
using LongCtx.Quantization;
using LongCtx.Tensors;

namespace LongCtx.Tests.Gpu;

/// <summary>
/// The CUDA FP8 kernels against the CPU semantics (bench/reference/FP8.md), on random bf16 inputs. Bit-equal: the codes
/// and scales of every input quantisation (per token, bounded per token, static, per group of 128; alone and fused
/// into RMSNorm) and of the FP8 KV cache's stores. Within bf16 rounding: the FP8 products (the own GEMV up to 16 rows,
/// cuBLASLt's FP8 GEMM beyond, rows not a multiple of 4 through the padded product), against the exact product of
/// the very codes and scales the GPU made: max |y − ref| ≤ 1e-2 · max |ref|.
/// </summary>
public class Fp8KernelTests
{
    public static TheoryData<Fp8ActivationScaling, int, int> Quantisations()
    {
        var data = new TheoryData<Fp8ActivationScaling, int, int>();
        foreach (var s in new[] { Fp8ActivationScaling.PerToken, Fp8ActivationScaling.PerTokenBounded, Fp8ActivationScaling.Static, Fp8ActivationScaling.PerTokenGroup })
            foreach (var (rows, k) in new[] { (1, 128), (5, 4096), (37, 384), (256, 14336) })
                data.Add(s, rows, k);
        return data;
    }

    private static Fp8Activations Scheme(Fp8ActivationScaling s) => s switch
    {
        Fp8ActivationScaling.PerTokenBounded => new(s, 2.5f),
        Fp8ActivationScaling.Static => new(s, 0.00390625f * 1.25f),
        _ => new(s),
    };

    /// <summary>Random activations with the shapes a model has: mostly N(0, 1), an outlier row, a near-zero row.</summary>
    private static float[] Activations(int rows, int k, int seed)
    {
        var random = new Random(seed);
        var x = new float[rows * k];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() * 2 - 1) * (float)Math.Exp(random.NextDouble() * 3 - 1.5);
        if (rows > 2)
        {
            for (int j = 0; j < k; j++) x[k + j] *= 40f;
            for (int j = 0; j < k; j++) x[2 * k + j] *= 1e-4f;
        }
        return x;
    }

    /// <summary>x on the GPU (rounded to bf16) and the same bf16 values as floats on the host.</summary>
    private static (CudaTensor Device, float[] Host) Upload(CudaBackend gpu, float[] x, int rows, int k)
    {
        var t = (CudaTensor)gpu.Upload<float>(x, rows, k);
        var host = new float[x.Length];
        gpu.Download<float>(t, host);
        return (t, host);
    }

    [GpuTheory]
    [MemberData(nameof(Quantisations))]
    public void InputQuantisationEqualsTheCpusBitForBit(Fp8ActivationScaling scaling, int rows, int k)
    {
        using var gpu = new CudaBackend(0);
        var scheme = Scheme(scaling);
        var (x, host) = Upload(gpu, Activations(rows, k, rows * 31 + k), rows, k);
        using var _ = x;
        using var q = gpu.Quantize(x, scheme);
        var (codes, scales) = Read(gpu, q);

        var expectedCodes = new byte[rows * k];
        var expectedScales = new float[scheme.ScaleCount(rows, k)];
        Fp8Quantizer.Activations(scheme, host, rows, k, expectedCodes, expectedScales);
        AssertCodes(expectedCodes, codes, $"{scheme} [{rows}, {k}]");
        AssertScales(expectedScales, scales, scheme, rows, k);
    }

    [GpuTheory]
    [InlineData(Fp8ActivationScaling.PerToken, 7, 4096)]
    [InlineData(Fp8ActivationScaling.PerTokenBounded, 64, 4096)]
    [InlineData(Fp8ActivationScaling.Static, 3, 1024)]
    [InlineData(Fp8ActivationScaling.PerTokenGroup, 33, 4096)]
    [InlineData(Fp8ActivationScaling.PerTokenGroup, 2, 8192)]
    public void FusedNormQuantisationEqualsNormThenQuantisation(Fp8ActivationScaling scaling, int rows, int k)
    {
        using var gpu = new CudaBackend(0);
        var scheme = Scheme(scaling);
        var (x, _) = Upload(gpu, Activations(rows, k, 7 * rows + k), rows, k);
        var random = new Random(k);
        using var norm = gpu.Upload<float>(Enumerable.Range(0, k).Select(_ => (float)(0.5 + random.NextDouble())).ToArray(), k);
        using var h = gpu.Allocate(DType.BF16, rows, k);
        using var __ = x;
        gpu.RmsNorm(x, norm, 1e-5f, h);
        using var apart = gpu.Quantize((CudaTensor)h, scheme);
        using var fused = gpu.Quantize(x, scheme, ((CudaTensor)norm, 1e-5f));
        var (codesApart, scalesApart) = Read(gpu, apart);
        var (codesFused, scalesFused) = Read(gpu, fused);
        AssertCodes(codesApart, codesFused, $"fused {scheme} [{rows}, {k}]");
        Assert.Equal(scalesApart, scalesFused);
    }

    public static TheoryData<string, int> Products()
    {
        var data = new TheoryData<string, int>();
        foreach (var weight in new[] { "rows", "blocks", "ct-tensor", "fbgemm" })
            foreach (int rows in new[] { 1, 3, 16, 17, 64, 130 })
                data.Add(weight, rows);
        return data;
    }

    [GpuTheory]
    [MemberData(nameof(Products))]
    public void Fp8ProductsAreTheCodesProduct(string weight, int rows)
    {
        using var gpu = new CudaBackend(0);
        var owners = new List<IDisposable>();
        try
        {
            var w = Weight(weight, owners);
            int n = w.Shape[0], k = w.Shape[1];
            var f = w.Fp8!;
            using var wt = (CudaTensor)gpu.LoadWeight(w);
            var (x, _) = Upload(gpu, Activations(rows, k, rows + n), rows, k);
            using var __ = x;
            var biasValues = Enumerable.Range(0, n).Select(i => (float)Math.Sin(i)).ToArray();
            using var bias = gpu.Upload<float>(biasValues, n);
            var start = Activations(rows, n, 99).Select(v => v * 0.1f).ToArray();
            using var y = gpu.Upload<float>(start, rows, n);
            var before = new float[rows * n];
            gpu.Download<float>(y, before);

            using var q = gpu.Quantize(x, f.Activations);
            var (codes, scales) = Read(gpu, q);
            gpu.Fp8Gemm(q, wt, (CudaTensor)y, (CudaTensor)bias, accumulate: true);
            var actual = new float[rows * n];
            gpu.Download<float>(y, actual);

            var wCodes = new byte[w.Length];
            Marshal.Copy(w.Data, wCodes, 0, wCodes.Length);
            int groups = f.Groups(k), per = f.Activations.ScalesPerRow(k), padded = q.Padded;
            var expected = new double[rows * n];
            for (int t = 0; t < rows; t++)
                for (int o = 0; o < n; o++)
                {
                    double sum = 0;
                    for (int g = 0; g < groups; g++)
                    {
                        double part = 0;
                        for (int j = g * (k / groups); j < (g + 1) * (k / groups); j++) part += (double)E4M3.Values[codes[t * k + j]] * E4M3.Values[wCodes[(long)o * k + j]];
                        double sa = per > 1 ? scales[g * padded + t] : scales[t];
                        sum += part * sa * f.WeightScale(o, g, groups);
                    }
                    expected[t * n + o] = sum + BFloat(biasValues[o]) + before[t * n + o];
                }
            double maxDiff = 0, maxRef = 0;
            for (int i = 0; i < expected.Length; i++)
            {
                maxDiff = Math.Max(maxDiff, Math.Abs(actual[i] - expected[i]));
                maxRef = Math.Max(maxRef, Math.Abs(expected[i]));
            }
            Assert.True(maxDiff <= 1e-2 * maxRef, $"{weight} [{rows}, {k}] x [{n}, {k}]: max |y - ref| = {maxDiff:e3} of max |ref| {maxRef:e3}");
        }
        finally
        {
            foreach (var o in owners) o.Dispose();
        }
    }

    /// <summary>
    /// The one-launch forms for up to 16 rows (gemv_fp8_each: q, k and v; gemv_fp8_swiglu: gate, up and SwiGLU) give the
    /// bits of the separate projections (and of the SwiGLU kernel after them).
    /// </summary>
    [GpuTheory]
    [InlineData("rows", 1)]
    [InlineData("rows", 16)]
    [InlineData("blocks", 4)]
    public void OneLaunchFormsGiveTheBitsOfTheSeparateOnes(string kind, int rows)
    {
        using var gpu = new CudaBackend(0);
        var owners = new List<IDisposable>();
        try
        {
            var ws = Enumerable.Range(0, 3).Select(i => (CudaTensor)gpu.LoadWeight(Weight(kind, owners, seed: i))).ToArray();
            int n = ws[0].Rows, k = ws[0].RowLength;
            var (x, _) = Upload(gpu, Activations(rows, k, rows), rows, k);
            using var __ = x;
            float[] Read(Tensor t)
            {
                var host = new float[t.Length];
                gpu.Download<float>(t, host);
                return host;
            }
            var ys = Enumerable.Range(0, 6).Select(_ => gpu.Allocate(DType.BF16, rows, n)).ToArray();
            gpu.LinearEach(x, (ws[0], null, ys[0]), (ws[1], null, ys[1]), (ws[2], null, ys[2]));
            for (int i = 0; i < 3; i++) gpu.Linear(x, ws[i], null, ys[3 + i]);
            for (int i = 0; i < 3; i++) Assert.Equal(Read(ys[3 + i]), Read(ys[i]));

            using var fused = gpu.Allocate(DType.BF16, rows, n);
            using var up = gpu.Allocate(DType.BF16, rows, n);
            gpu.SwiGluLinear(x, ws[0], ws[1], fused, up);
            gpu.SwiGlu(ys[3], ys[4], ys[5]);
            Assert.Equal(Read(ys[5]), Read(fused));
            foreach (var t in ys.Concat(ws)) t.Dispose();
        }
        finally
        {
            foreach (var o in owners) o.Dispose();
        }
    }

    [GpuTheory]
    [InlineData(1, 1024, 1f)]
    [InlineData(3, 1024, 0.0234375f)]
    [InlineData(130, 256, 0.5f)]
    public void KvCacheStoresEqualTheCpusCodes(int rows, int rowLength, float scale)
    {
        using var gpu = new CudaBackend(0);
        var (x, host) = Upload(gpu, Activations(rows, rowLength, rows), rows, rowLength);
        using var _ = x;
        using var cache = gpu.Allocate(DType.F8E4M3, rows + 5, rowLength);
        cache.Scale = scale;
        var half = rows / 2;
        // Both ways a cache is filled: one copy (a prefill's rows), and a list of row copies (a decode step's).
        gpu.Copy(x.SliceRows(0, half), cache.SliceRows(2, half));
        gpu.CopyEach((x.SliceRows(half, rows - half), cache.SliceRows(2 + half, rows - half)));
        var codes = gpu.DownloadBytes(cache.SliceRows(2, rows));
        var expected = new byte[rows * rowLength];
        E4M3.Quantize(host, scale, expected);
        AssertCodes(expected, codes, $"KV store scale {scale}");
    }

    private static float BFloat(float v) => BitConverter.Int32BitsToSingle((int)((BitConverter.SingleToUInt32Bits(v) + 0x7FFFu + ((BitConverter.SingleToUInt32Bits(v) >> 16) & 1)) & 0xFFFF0000u));

    private static (byte[] Codes, float[] Scales) Read(CudaBackend gpu, CudaBackend.Fp8Input q)
    {
        var codes = gpu.DownloadBytes(q.Codes.SliceRows(0, q.Rows));
        var scales = MemoryMarshal.Cast<byte, float>(gpu.DownloadBytes(q.Scales)).ToArray();
        return (codes, scales);
    }

    private static void AssertCodes(byte[] expected, byte[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        var wrong = Enumerable.Range(0, expected.Length).Where(i => expected[i] != actual[i]).ToList();
        Assert.True(wrong.Count == 0, $"{what}: {wrong.Count} of {expected.Length} codes differ, e.g. {string.Join("; ", wrong.Take(5).Select(i => $"[{i}] {actual[i]:x2}, CPU {expected[i]:x2}"))}");
    }

    // The GPU lays per-group scales out group-major over the padded rows (cuBLASLt's VEC128 layout); the CPU row-major.
    private static void AssertScales(float[] expected, float[] actual, Fp8Activations scheme, int rows, int k)
    {
        int padded = (rows + 3) / 4 * 4, per = scheme.ScalesPerRow(k);
        for (int t = 0; t < rows; t++)
            for (int g = 0; g < per; g++)
            {
                float cpu = scheme.Scaling == Fp8ActivationScaling.Static ? expected[0] : expected[t * per + g];
                float gpu = per > 1 ? actual[g * padded + t] : actual[t];
                Assert.True(BitConverter.SingleToInt32Bits(cpu) == BitConverter.SingleToInt32Bits(gpu), $"{scheme}: scale of row {t} group {g} is {gpu:R}, CPU {cpu:R}");
            }
    }

    /// <summary>An FP8 weight of each kind: random per row or per block (large enough for cuBLASLt's tiles), or the fixtures' own.</summary>
    private static HostTensor Weight(string kind, List<IDisposable> owners, int seed = 0)
    {
        switch (kind)
        {
            case "ct-tensor":
            case "fbgemm":
                string dir = Path.Combine(Quantization.Fp8Fixture.Root, $"tiny-llama-fp8-{kind}");
                var weights = ModelWeights.Load(dir, ModelConfig.Load(dir));
                owners.Add(weights);
                return weights.Layers[1].UpProj;
        }
        int n = 512, k = 1024;
        var (source, values) = Quantization.Fp8TestWeights.Floats(n, k, seed, owners);
        var rows = Fp8Weights.QuantizeRows(source, Fp8Activations.PerToken, owners);
        return kind == "rows" ? rows : Quantization.Fp8TestWeights.Blocks(values, n, k, owners);
    }
}
