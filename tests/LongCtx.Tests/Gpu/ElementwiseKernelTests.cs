using LongCtx.Backends;
using LongCtx.Backends.Cpu;
using LongCtx.Cuda.Ops;
using LongCtx.Model;
using LongCtx.Tensors;
using LongCtx.Tests.ContextParallel;
using static LongCtx.Tests.Gpu.AttentionComparison;

namespace LongCtx.Tests.Gpu;

/// <summary>
/// The CUDA backend's elementwise operations and LinearAccumulate against the CPU backend, with fresh random
/// bf16 inputs: within 1e-2 relative (bf16 roundings). The backend runs a 16-byte _vec8 kernel when every
/// pointer is 16-byte aligned and the length is a multiple of 8, else the scalar kernel; each case also runs
/// on the same values placed one element past an aligned start, which forces the scalar kernel, and the two
/// must give the same bits (rms_norm within 1e-3: its vector kernel sums the squares in another order).
/// Lengths that are not multiples of 8 take the scalar kernel both times.
/// </summary>
public class ElementwiseKernelTests
{
    private const double CpuTolerance = 1e-2;

    /// <summary>The two in-place binary operations of a layer: first = op(first, second), as the replica runs them.</summary>
    [GpuTheory]
    [InlineData("swiglu", 8)]
    [InlineData("swiglu", 4096 * 3)]
    [InlineData("swiglu", 1000)]
    [InlineData("swiglu", 1003)]
    [InlineData("swiglu", 5)]
    [InlineData("add", 8)]
    [InlineData("add", 4096 * 3)]
    [InlineData("add", 1000)]
    [InlineData("add", 1003)]
    [InlineData("add", 5)]
    [InlineData("gelu_tanh_glu", 4096 * 3)]
    [InlineData("gelu_tanh_glu", 1003)]
    public void InPlaceBinaryOperationsMatchTheCpu(string operation, int n)
    {
        var (random, where) = Seeded($"{operation} of {n}");
        float[] first = RandomBf16(random, n), second = RandomBf16(random, n);
        using var cpu = new CpuBackend();
        using var gpu = new CudaBackend(0);
        float[] Run(IBackend b, int offset)
        {
            using var f = Placed.Upload(b, first, offset, n);
            using var sec = Placed.Upload(b, second, offset, n);
            if (operation == "swiglu") b.SwiGlu(f.Tensor, sec.Tensor, f.Tensor);
            else if (operation == "gelu_tanh_glu") b.GeluTanhGlu(f.Tensor, sec.Tensor, f.Tensor);
            else b.Add(f.Tensor, sec.Tensor);
            return Read(b, f.Tensor);
        }
        AssertMatches(Run(cpu, 0), Run(gpu, 0), Run(gpu, 1), where, exactTwins: true);
    }

    // Hidden 4096 gives each of the 256 threads two 16-byte groups; 64 leaves most of them idle.
    [GpuTheory]
    [InlineData(3, 4096, false)]
    [InlineData(3, 4096, true)]
    [InlineData(5, 64, false)]
    [InlineData(2, 1000, true)]
    [InlineData(3, 1003, false)]
    [InlineData(3, 1003, true)]
    [InlineData(3, 4096, false, 1f)] // Gemma's (1 + w)
    [InlineData(32, 256, true, 1f)]  // Gemma 3's per-head q/k norms at head dim 256, in place
    [InlineData(3, 1003, false, 1f)]
    public void RmsNormMatchesTheCpu(int rows, int hidden, bool inPlace, float offset = 0f)
    {
        var (random, where) = Seeded($"RmsNorm of [{rows}, {hidden}]{(inPlace ? " in place" : "")}, weight offset {offset}");
        float[] x = RandomBf16(random, rows * hidden), weight = RandomBf16(random, hidden);
        using var cpu = new CpuBackend();
        using var gpu = new CudaBackend(0);
        float[] Run(IBackend b, int offset)
        {
            using var xt = Placed.Upload(b, x, offset, rows, hidden);
            using var w = Placed.Upload(b, weight, offset, hidden);
            using var y = inPlace ? null : Placed.Upload(b, new float[x.Length], offset, rows, hidden);
            var output = y?.Tensor ?? xt.Tensor;
            b.RmsNorm(xt.Tensor, w.Tensor, 1e-5f, output, offset);
            return Read(b, output);
        }
        AssertMatches(Run(cpu, 0), Run(gpu, 0), Run(gpu, 1), where, exactTwins: false);
    }

    /// <summary>Gemma's in-place scalings: the final logits' soft cap and the embedding scale.</summary>
    [GpuTheory]
    [InlineData("soft_cap", 262208)]
    [InlineData("soft_cap", 1003)]
    [InlineData("scale", 3840 * 3)]
    [InlineData("scale", 1003)]
    public void InPlaceScalingsMatchTheCpu(string operation, int n)
    {
        var (random, where) = Seeded($"{operation} of {n}");
        var x = RandomBf16(random, n).Select(v => v * 16).ToArray(); // still bf16 values: the CPU computes on the GPU's inputs
        using var cpu = new CpuBackend();
        using var gpu = new CudaBackend(0);
        float[] Run(IBackend b, int offset)
        {
            using var t = Placed.Upload(b, x, offset, n);
            if (operation == "soft_cap") b.SoftCap(t.Tensor, 30f);
            else b.Scale(t.Tensor, 61.96773f);
            return Read(b, t.Tensor);
        }
        AssertMatches(Run(cpu, 0), Run(gpu, 0), Run(gpu, 1), where, exactTwins: true);
    }

    // Head dims 128 and 48 take rope_vec8 (d/2 a multiple of 8); 40 does not.
    [GpuTheory]
    [InlineData(5, 3, 128)]
    [InlineData(4, 2, 48)]
    [InlineData(3, 2, 40)]
    public void RopeMatchesTheCpu(int rows, int heads, int headDim)
    {
        var (random, where) = Seeded($"Rope of [{rows}, {heads}, {headDim}]");
        float[] x = RandomBf16(random, rows * heads * headDim);
        // Positions up to 10^6: the kernels reduce the angle mod 2π in double to keep the phase there.
        var layout = new TokenLayout(new int[rows], Enumerable.Range(0, rows).Select(_ => random.Next(1_000_000)).ToArray());
        var table = RopeConfig.Default(500000).BuildTable(headDim);
        using var cpu = new CpuBackend();
        using var gpu = new CudaBackend(0);
        float[] Run(IBackend b, int offset)
        {
            using var xt = Placed.Upload(b, x, offset, rows, heads, headDim);
            b.Rope(xt.Tensor, layout, table);
            return Read(b, xt.Tensor);
        }
        AssertMatches(Run(cpu, 0), Run(gpu, 0), Run(gpu, 1), where, exactTwins: true);
    }

    // q and k in one launch: a decode row (a thread per head) and 8192 rows (a thread per row's pair group, every
    // head); head dim 40 takes the scalar kernel, once for each.
    [GpuTheory]
    [InlineData(1, 128)]
    [InlineData(8192, 128)]
    [InlineData(3, 40)]
    public void RopeOfQueriesAndKeysTogetherMatchesTheCpu(int rows, int headDim)
    {
        const int qHeads = 4, kHeads = 2;
        var (random, where) = Seeded($"Rope of q [{rows}, {qHeads}, {headDim}] and k [{rows}, {kHeads}, {headDim}]");
        float[] q = RandomBf16(random, rows * qHeads * headDim), k = RandomBf16(random, rows * kHeads * headDim);
        var layout = new TokenLayout(new int[rows], Enumerable.Range(0, rows).Select(_ => random.Next(1_000_000)).ToArray());
        var table = RopeConfig.Default(500000).BuildTable(headDim);
        using var cpu = new CpuBackend();
        using var gpu = new CudaBackend(0);
        float[] Run(IBackend b, bool together)
        {
            using var qt = b.Upload<float>(q, rows, qHeads, headDim);
            using var kt = b.Upload<float>(k, rows, kHeads, headDim);
            if (together) b.Rope(qt, kt, layout, table);
            else
            {
                b.Rope(qt, layout, table);
                b.Rope(kt, layout, table);
            }
            return [.. Read(b, qt), .. Read(b, kt)];
        }
        float[] actual = Run(gpu, together: true);
        double error = DenseReference.RelativeError(actual, Run(cpu, together: true));
        Assert.True(error < CpuTolerance, $"{where}: GPU vs CPU {error:e2}");
        // Each element is rotated by the same arithmetic either way: the same bits as one launch per tensor.
        Assert.Equal(Run(gpu, together: false).Select(BitConverter.SingleToInt32Bits), actual.Select(BitConverter.SingleToInt32Bits));
    }

    [GpuTheory]
    [InlineData(37, 256, 96)]
    [InlineData(1, 64, 8)]
    public void LinearAccumulateMatchesTheCpu(int tokens, int inFeatures, int outFeatures)
    {
        var (random, where) = Seeded($"LinearAccumulate of [{tokens}, {inFeatures}] x [{outFeatures}, {inFeatures}]");
        float[] x = RandomBf16(random, tokens * inFeatures), w = RandomBf16(random, outFeatures * inFeatures), y = RandomBf16(random, tokens * outFeatures);
        using var cpu = new CpuBackend();
        using var gpu = new CudaBackend(0);
        float[] Run(IBackend b)
        {
            using var xt = b.Upload<float>(x, tokens, inFeatures);
            using var wt = b.Upload<float>(w, outFeatures, inFeatures);
            using var yt = b.Upload<float>(y, tokens, outFeatures);
            b.LinearAccumulate(xt, wt, yt);
            return Read(b, yt);
        }
        double error = DenseReference.RelativeError(Run(gpu), Run(cpu));
        Assert.True(error < CpuTolerance, $"{where}: GPU vs CPU {error:e2}");
    }

    /// <summary>
    /// GEMMs of up to 4 rows run Kernels/gemv.cu when k is a multiple of 8 and x and w are 16-byte aligned, of 5 to
    /// 16 rows Kernels/gemv_mma.cu when k is also a multiple of 32: against the CPU, and against cuBLASLt on the same
    /// values (x placed one element off, which sends the call there). k = 1000 leaves lanes without a whole round of
    /// loads (and is no multiple of 32: cuBLASLt at 11 rows), 1004 is not a multiple of 8 (cuBLASLt both times), 1027
    /// outputs leave the last block of gemv_mma partly empty, 17 rows are past both kernels.
    /// </summary>
    [GpuTheory]
    [InlineData(1, 4096, 1027, false)]
    [InlineData(1, 4096, 96, true)]
    [InlineData(2, 1000, 300, false)]
    [InlineData(3, 24, 40, true)]
    [InlineData(4, 14336, 64, true)]
    [InlineData(1, 1004, 64, false)]
    [InlineData(5, 512, 64, true)]
    [InlineData(8, 4096, 1027, false)]
    [InlineData(16, 14336, 96, true)]
    [InlineData(11, 1000, 64, false)]
    [InlineData(17, 256, 64, true)]
    public void FewRowGemmsMatchTheCpuAndCublas(int tokens, int inFeatures, int outFeatures, bool accumulate)
    {
        var (random, where) = Seeded($"{(accumulate ? "LinearAccumulate" : "Linear")} of [{tokens}, {inFeatures}] x [{outFeatures}, {inFeatures}]");
        float[] x = RandomBf16(random, tokens * inFeatures), w = RandomBf16(random, outFeatures * inFeatures), y = RandomBf16(random, tokens * outFeatures);
        using var cpu = new CpuBackend();
        using var gpu = new CudaBackend(0);
        float[] Run(IBackend b, int offset)
        {
            using var xt = Placed.Upload(b, x, offset, tokens, inFeatures);
            using var wt = b.Upload<float>(w, outFeatures, inFeatures);
            using var yt = b.Upload<float>(y, tokens, outFeatures);
            if (accumulate) b.LinearAccumulate(xt.Tensor, wt, yt);
            else b.Linear(xt.Tensor, wt, null, yt);
            return Read(b, yt);
        }
        AssertMatches(Run(cpu, 0), Run(gpu, 0), Run(gpu, 1), where, exactTwins: false, twinTolerance: CpuTolerance);
    }

    /// <summary>
    /// GEMMs past 16 rows run through cuBLASLt, whose plans depend on the pointers' alignment and whose epilogue adds a
    /// 16-byte aligned bias: against the CPU, with x or the bias placed one element off (2-byte aligned x; a bias
    /// added by add_bias after) giving the same values within bf16 rounding (the epilogue rounds once, add_bias twice).
    /// </summary>
    [GpuTheory]
    [InlineData(64, 4096, 1027, "bias")]
    [InlineData(300, 1000, 96, "bias")]
    [InlineData(33, 1004, 64, "bias")]
    [InlineData(64, 4096, 1027, "accumulate")]
    [InlineData(300, 1000, 96, "none")]
    public void CublasLtGemmsMatchTheCpu(int tokens, int inFeatures, int outFeatures, string extra)
    {
        var (random, where) = Seeded($"Linear ({extra}) of [{tokens}, {inFeatures}] x [{outFeatures}, {inFeatures}]");
        float[] x = RandomBf16(random, tokens * inFeatures), w = RandomBf16(random, outFeatures * inFeatures),
            y = RandomBf16(random, tokens * outFeatures), bias = RandomBf16(random, outFeatures);
        using var cpu = new CpuBackend();
        using var gpu = new CudaBackend(0);
        float[] Run(IBackend b, int offset)
        {
            using var xt = Placed.Upload(b, x, offset, tokens, inFeatures);
            using var bt = Placed.Upload(b, bias, offset, outFeatures);
            using var wt = b.Upload<float>(w, outFeatures, inFeatures);
            using var yt = b.Upload<float>(y, tokens, outFeatures);
            if (extra == "accumulate") b.LinearAccumulate(xt.Tensor, wt, yt);
            else b.Linear(xt.Tensor, wt, extra == "bias" ? bt.Tensor : null, yt);
            return Read(b, yt);
        }
        AssertMatches(Run(cpu, 0), Run(gpu, 0), Run(gpu, 1), where, exactTwins: false, twinTolerance: CpuTolerance);
    }

    /// <summary>
    /// Projections of one x through LinearEach (one gemv3 launch for up to 4 rows, one gemv3_mma for up to 16): the
    /// bits of a Linear each on the GPU, and the CPU's values. 17 rows go through cuBLASLt one by one; n2 = 0 is two
    /// projections; 40 outputs leave a block of gemv3_mma partly empty.
    /// </summary>
    [GpuTheory]
    [InlineData(1, 4096, 512, 128, 128)]
    [InlineData(3, 256, 96, 32, 0)]
    [InlineData(4, 1000, 40, 8, 8)]
    [InlineData(5, 256, 96, 32, 32)]
    [InlineData(8, 4096, 512, 128, 128)]
    [InlineData(13, 256, 96, 40, 0)]
    [InlineData(17, 256, 96, 32, 32)]
    public void ProjectionsOfOneInputMatchALinearEach(int tokens, int inFeatures, int n0, int n1, int n2)
    {
        var (random, where) = Seeded($"LinearEach of [{tokens}, {inFeatures}] into {n0}, {n1}, {n2}");
        int[] outs = new[] { n0, n1, n2 }.Where(n => n > 0).ToArray();
        float[] x = RandomBf16(random, tokens * inFeatures);
        float[][] weights = outs.Select(n => RandomBf16(random, n * inFeatures)).ToArray();
        using var cpu = new CpuBackend();
        using var gpu = new CudaBackend(0);
        float[] Run(IBackend b, bool together)
        {
            using var xt = b.Upload<float>(x, tokens, inFeatures);
            var ws = weights.Select((w, i) => b.Upload<float>(w, outs[i], inFeatures)).ToArray();
            var ys = outs.Select(n => b.Allocate(b.ActivationType, tokens, n)).ToArray();
            try
            {
                if (together) b.LinearEach(xt, ws.Select((w, i) => (w, (Tensor?)null, ys[i])).ToArray());
                else for (int i = 0; i < ws.Length; i++) b.Linear(xt, ws[i], null, ys[i]);
                return ys.SelectMany(y => Read(b, y)).ToArray();
            }
            finally
            {
                foreach (var t in ws.Concat(ys)) t.Dispose();
            }
        }
        AssertMatches(Run(cpu, true), Run(gpu, true), Run(gpu, false), where, exactTwins: true);
    }

    /// <summary>
    /// SwiGluLinear (one gemv_swiglu launch for up to 4 rows, one gemv_swiglu_mma for up to 16): the bits of two
    /// Linears and SwiGlu on the GPU, and the CPU's values; 17 rows take the separate operations (cuBLASLt).
    /// </summary>
    [GpuTheory]
    [InlineData(1, 4096, 1536)]
    [InlineData(2, 1000, 300)]
    [InlineData(4, 256, 64)]
    [InlineData(6, 256, 64)]
    [InlineData(8, 4096, 1536)]
    [InlineData(16, 1024, 200)]
    [InlineData(17, 256, 64)]
    public void SwiGluLinearMatchesTheSeparateOperations(int tokens, int inFeatures, int outFeatures)
    {
        var (random, where) = Seeded($"SwiGluLinear of [{tokens}, {inFeatures}] x [{outFeatures}, {inFeatures}]");
        float[] x = RandomBf16(random, tokens * inFeatures), gate = RandomBf16(random, outFeatures * inFeatures), up = RandomBf16(random, outFeatures * inFeatures);
        using var cpu = new CpuBackend();
        using var gpu = new CudaBackend(0);
        float[] Run(IBackend b, bool fused)
        {
            using var xt = b.Upload<float>(x, tokens, inFeatures);
            using var g = b.Upload<float>(gate, outFeatures, inFeatures);
            using var u = b.Upload<float>(up, outFeatures, inFeatures);
            using var y = b.Allocate(b.ActivationType, tokens, outFeatures);
            using var work = b.Allocate(b.ActivationType, tokens, outFeatures);
            if (fused) b.SwiGluLinear(xt, g, u, y, work);
            else
            {
                b.Linear(xt, g, null, y);
                b.Linear(xt, u, null, work);
                b.SwiGlu(y, work, y);
            }
            return Read(b, y);
        }
        AssertMatches(Run(cpu, true), Run(gpu, true), Run(gpu, false), where, exactTwins: true);
    }

    /// <summary>
    /// The layer's norms fused into the decode GEMVs (NormedLinearEach into gemv3, NormedSwiGluLinear into
    /// gemv_swiglu: each block normalises x itself for up to 4 rows): the bits of RmsNorm and then the projections
    /// on the GPU, and the CPU's values. 5 to 16 rows take the norm apart and then gemv_mma.cu, 17 cuBLASLt.
    /// </summary>
    [GpuTheory]
    [InlineData("qkv", 1, 4096, 512, 128)]
    [InlineData("qkv", 4, 1000, 40, 8)]
    [InlineData("qkv", 5, 256, 96, 32)]
    [InlineData("qkv", 8, 4096, 512, 128)]
    [InlineData("qkv", 17, 256, 96, 32)]
    [InlineData("swiglu", 1, 4096, 1536, 0)]
    [InlineData("swiglu", 3, 256, 64, 0)]
    [InlineData("swiglu", 5, 256, 64, 0)]
    [InlineData("swiglu", 16, 4096, 256, 0)]
    [InlineData("swiglu", 17, 256, 64, 0)]
    public void NormedProjectionsMatchANormAndTheProjections(string projections, int tokens, int hidden, int n0, int n1)
    {
        var (random, where) = Seeded($"{projections} of [{tokens}, {hidden}] normed, into {n0} and {n1}");
        var problem = NormedProblem.Draw(random, tokens, hidden, projections == "qkv" ? [n0, n1, n1] : [n0, n0]);
        using var cpu = new CpuBackend();
        using var gpu = new CudaBackend(0);
        float[] Run(IBackend b, bool fused) => projections == "qkv"
            ? problem.Run(b, 3, (x, norm, h, ws, ys) =>
            {
                var each = ws.Select((w, i) => (w, (Tensor?)null, ys[i])).ToArray();
                if (fused) b.NormedLinearEach(x, norm, NormedProblem.Eps, h, each);
                else
                {
                    b.RmsNorm(x, norm, NormedProblem.Eps, h);
                    b.LinearEach(h, each);
                }
            })
            : problem.Run(b, 1, (x, norm, h, ws, ys) =>
            {
                if (fused) b.NormedSwiGluLinear(x, norm, NormedProblem.Eps, h, ws[0], ws[1], ys[0], ys[1]);
                else
                {
                    b.RmsNorm(x, norm, NormedProblem.Eps, h);
                    b.SwiGluLinear(h, ws[0], ws[1], ys[0], ys[1]);
                }
            });
        AssertMatches(Run(cpu, true), Run(gpu, true), Run(gpu, false), where, exactTwins: true);
    }

    /// <summary>
    /// A layer's attention inputs normalised and with q and k rotated inside the decode GEMV (NormedRotatedQkv into
    /// gemv3 with ROPE for up to 4 rows: a warp per pair (i, i + D/2) of a head; into gemv3_mma for 5 to 16: a block
    /// per 8 such pairs): the bits of NormedLinearEach and then Rope on the GPU, and the CPU's values, at random positions up to
    /// 10^6 and with YaRN's attention scale. 17 rows take the separate operations; head dim 40 (a non-vectorised
    /// rope) takes them past 4 rows.
    /// </summary>
    [GpuTheory]
    [InlineData(1, 4096, 32, 8, 128)]
    [InlineData(4, 1024, 4, 2, 128)]
    [InlineData(2, 512, 6, 3, 64)]
    [InlineData(5, 256, 4, 2, 128)]
    [InlineData(8, 1024, 8, 2, 128)]
    [InlineData(16, 512, 6, 3, 64)]
    [InlineData(3, 320, 4, 2, 40)]
    [InlineData(6, 320, 4, 2, 40)]
    [InlineData(17, 256, 4, 2, 128)]
    public void RotatedProjectionsMatchTheProjectionsAndRope(int tokens, int hidden, int heads, int kvHeads, int headDim)
    {
        var (random, where) = Seeded($"q/k/v of [{tokens}, {hidden}] normed and rotated, {heads}/{kvHeads} heads of {headDim}");
        var problem = NormedProblem.Draw(random, tokens, hidden, [heads * headDim, kvHeads * headDim, kvHeads * headDim]);
        var layout = new TokenLayout(new int[tokens], Enumerable.Range(0, tokens).Select(_ => random.Next(1_000_000)).ToArray());
        var table = RopeConfig.Default(500000).BuildTable(headDim) with { AttentionScale = 1.1f };
        using var cpu = new CpuBackend();
        using var gpu = new CudaBackend(0);
        float[] Run(IBackend b, bool fused) => problem.Run(b, 3, (x, norm, h, ws, ys) =>
        {
            if (fused) b.NormedRotatedQkv(x, norm, NormedProblem.Eps, h, (ws[0], null, ys[0]), (ws[1], null, ys[1]), (ws[2], null, ys[2]), layout, table);
            else
            {
                b.NormedLinearEach(x, norm, NormedProblem.Eps, h, (ws[0], null, ys[0]), (ws[1], null, ys[1]), (ws[2], null, ys[2]));
                b.Rope(ys[0].View(tokens, heads, headDim), ys[1].View(tokens, kvHeads, headDim), layout, table);
            }
        });
        AssertMatches(Run(cpu, true), Run(gpu, true), Run(gpu, false), where, exactTwins: true);
    }

    /// <summary>Random bf16 rows x [tokens, hidden], an RMSNorm weight and projection weights [outs[i], hidden].</summary>
    private sealed record NormedProblem(int Tokens, int Hidden, float[] X, float[] Norm, float[][] Weights, int[] Outs)
    {
        public const float Eps = 1e-5f;

        public static NormedProblem Draw(Random random, int tokens, int hidden, int[] outs) =>
            new(tokens, hidden, RandomBf16(random, tokens * hidden), RandomBf16(random, hidden), outs.Select(n => RandomBf16(random, n * hidden)).ToArray(), outs);

        /// <summary>Uploads the problem to b, runs project(x, norm weight, h, weights, outputs) and reads back the first <paramref name="read"/> outputs.</summary>
        public float[] Run(IBackend b, int read, Action<Tensor, Tensor, Tensor, Tensor[], Tensor[]> project)
        {
            using var x = b.Upload<float>(X, Tokens, Hidden);
            using var norm = b.Upload<float>(Norm, Hidden);
            using var h = b.Allocate(b.ActivationType, Tokens, Hidden);
            var ws = Weights.Select((w, i) => b.Upload<float>(w, Outs[i], Hidden)).ToArray();
            var ys = Outs.Select(n => b.Allocate(b.ActivationType, Tokens, n)).ToArray();
            try
            {
                project(x, norm, h, ws, ys);
                return ys.Take(read).SelectMany(y => Read(b, y)).ToArray();
            }
            finally
            {
                foreach (var t in ws.Concat(ys)) t.Dispose();
            }
        }
    }

    /// <summary>
    /// CopyEach (a decode step's new K and V rows into the caches): small copies of whole 16-byte words on 16-byte
    /// boundaries take one kernel for up to 32 of them, others cuMemcpy. Either way the destinations, views inside
    /// one tensor with gaps between them, hold exactly the sources' bits and nothing around them changes.
    /// </summary>
    [GpuTheory]
    [InlineData(2, 1024, 0)]      // one decode row of 8 KV heads of 128 (bf16), K and V
    [InlineData(2, 16 * 1024, 0)] // 16 rows
    [InlineData(16, 1024, 0)]     // a batch of 8 sequences' K and V rows
    [InlineData(70, 0, 0)]        // 70 copies of whole words, random lengths: three launches
    [InlineData(2, 1024, 1)]      // sources one element off a 16-byte boundary: cuMemcpy
    [InlineData(5, -1, 0)]        // random lengths, mostly not whole words: cuMemcpy for those
    public void CopyEachCopiesExactly(int copies, int length, int offset)
    {
        var (random, where) = Seeded($"{copies} copies of {(length > 0 ? length : length == 0 ? "whole words" : "any")} elements, sources {offset} off");
        int[] lengths = Enumerable.Range(0, copies).Select(_ => length > 0 ? length : length == 0 ? 8 * random.Next(1, 257) : random.Next(1, 1004)).ToArray();
        float[][] sources = lengths.Select(n => RandomBf16(random, n)).ToArray();
        var at = new int[copies];
        int total = 8;
        for (int i = 0; i < copies; i++, total += 8)
        {
            at[i] = total;
            total += (lengths[i] + 7) / 8 * 8;
        }
        float[] background = RandomBf16(random, total);
        using var gpu = new CudaBackend(0);
        var placed = sources.Select((x, i) => Placed.Upload(gpu, x, offset, lengths[i])).ToArray();
        using var destination = gpu.Upload<float>(background, total);
        gpu.CopyEach(placed.Select((p, i) => (p.Tensor, destination.SliceRows(at[i], lengths[i]))).ToArray());
        var expected = (float[])background.Clone();
        for (int i = 0; i < copies; i++) sources[i].CopyTo(expected, at[i]);
        var actual = Read(gpu, destination);
        foreach (var p in placed) p.Dispose();
        int differing = expected.Zip(actual, (e, x) => BitConverter.SingleToInt32Bits(e) == BitConverter.SingleToInt32Bits(x) ? 0 : 1).Sum();
        Assert.True(differing == 0, $"{where}: {differing} of {total} elements differ");
    }

    /// <summary>
    /// A ring's merge: causal attention over the keys split in two at a random row, each half's output and LSE
    /// merged by <see cref="IBackend.MergeAttention"/>, equals the CPU's attention over all keys. Rows before the
    /// split see nothing of the second half (LSE −inf: the merge leaves them). Head dims 128 and 64 take
    /// merge_attention_vec8 (16 and 8 threads a row); 48 (6 a row) and the run one element off take the scalar kernel.
    /// </summary>
    [GpuTheory]
    [InlineData(300, 4, 2, 128)]
    [InlineData(77, 8, 8, 64)]
    [InlineData(50, 2, 1, 48)]
    public void MergedKeyHalvesEqualAttentionOverAllKeys(int n, int heads, int kvHeads, int d)
    {
        var (random, where) = Seeded($"merge of [{n}, {heads}, {d}] over {kvHeads} KV heads");
        int split = random.Next(1, n);
        where += $", keys split at {split}";
        float[] q = RandomBf16(random, n * heads * d), k = RandomBf16(random, n * kvHeads * d), v = RandomBf16(random, n * kvHeads * d);
        var layout = new TokenLayout(new int[n], Enumerable.Range(0, n).ToArray());
        float scale = 1f / MathF.Sqrt(d);
        using var cpu = new CpuBackend();
        var (expected, _) = Run(cpu, heads, kvHeads, d, q, layout, k, v, layout);
        using var gpu = new CudaBackend(0);
        using var qt = gpu.Upload<float>(q, n, heads, d);
        using var kt = gpu.Upload<float>(k, n, kvHeads, d);
        using var vt = gpu.Upload<float>(v, n, kvHeads, d);
        float[] Merged(int offset)
        {
            using var accumulator = Placed.Upload(gpu, new float[n * heads * d], offset, n, heads, d);
            using var part = Placed.Upload(gpu, new float[n * heads * d], offset, n, heads, d);
            using var accumulatorLse = gpu.Allocate(DType.F32, n, heads);
            using var partLse = gpu.Allocate(DType.F32, n, heads);
            foreach (var (start, count, output, lse) in new[] { (0, split, accumulator.Tensor, accumulatorLse), (split, n - split, part.Tensor, partLse) })
            {
                using var aligned = gpu.Allocate(DType.BF16, n, heads, d);
                gpu.Attention(qt, layout, kt.SliceRows(start, count), vt.SliceRows(start, count), layout.Slice(start, count), new AttentionRule(scale), aligned, lse);
                gpu.Copy(aligned, output);
            }
            gpu.MergeAttention(accumulator.Tensor, accumulatorLse, part.Tensor, partLse);
            return Read(gpu, accumulator.Tensor);
        }
        AssertMatches(expected, Merged(0), Merged(1), where, exactTwins: true);
    }

    /// <summary>
    /// A distributed decode step's one-pass merge on the GPU: attention over keys cut into 3 parts, the parts laid
    /// out as the all-gather leaves them, merged by <see cref="IBackend.MergeAttentionParts"/>, against the CPU's
    /// attention over all keys. Head dim 128 takes merge_attention_parts_vec8; 48 and the run one element off take the
    /// warp-per-entry kernel, with the same bits.
    /// </summary>
    [GpuTheory]
    [InlineData(5, 8, 2, 128)]
    [InlineData(3, 4, 1, 48)]
    public void MergedDecodePartsEqualAttentionOverAllKeys(int queries, int heads, int kvHeads, int d)
    {
        const int parts = 3;
        var (random, where) = Seeded($"{parts}-part merge of [{queries}, {heads}, {d}] over {kvHeads} KV heads");
        int keys = random.Next(3 * 64, 600);
        int[] cuts = [0, random.Next(1, keys / 2), random.Next(keys / 2, keys), keys];
        where += $", {keys} keys cut at {cuts[1]} and {cuts[2]}";
        float[] q = RandomBf16(random, queries * heads * d), k = RandomBf16(random, keys * kvHeads * d), v = RandomBf16(random, keys * kvHeads * d);
        // Decode rows at the end of the keys, plus one early row that sees only the first part (the others' LSE −inf).
        var queryLayout = new TokenLayout(new int[queries], Enumerable.Range(0, queries).Select(i => i == 0 ? random.Next(cuts[1]) : keys - 1).ToArray());
        var keyLayout = new TokenLayout(new int[keys], Enumerable.Range(0, keys).ToArray());
        float scale = 1f / MathF.Sqrt(d);
        using var cpu = new CpuBackend();
        var (expected, _) = Run(cpu, heads, kvHeads, d, q, queryLayout, k, v, keyLayout);
        using var gpu = new CudaBackend(0);
        using var qt = gpu.Upload<float>(q, queries, heads, d);
        using var kt = gpu.Upload<float>(k, keys, kvHeads, d);
        using var vt = gpu.Upload<float>(v, keys, kvHeads, d);
        using var gathered = gpu.Allocate(DType.BF16, parts * queries, heads, d);
        using var gatheredLse = gpu.Allocate(DType.F32, parts * queries, heads);
        for (int j = 0; j < parts; j++)
        {
            int n = cuts[j + 1] - cuts[j];
            gpu.Attention(qt, queryLayout, kt.SliceRows(cuts[j], n), vt.SliceRows(cuts[j], n), keyLayout.Slice(cuts[j], n), new AttentionRule(scale),
                gathered.SliceRows(j * queries, queries), gatheredLse.SliceRows(j * queries, queries));
        }
        float[] Merged(int offset)
        {
            using var placedParts = Placed.Upload(gpu, Read(gpu, gathered), offset, parts * queries, heads, d);
            using var output = Placed.Upload(gpu, new float[queries * heads * d], offset, queries, heads, d);
            gpu.MergeAttentionParts(placedParts.Tensor, gatheredLse, output.Tensor);
            return Read(gpu, output.Tensor);
        }
        AssertMatches(expected, Merged(0), Merged(1), where, exactTwins: true);
    }

    private static (Random Random, string Where) Seeded(string what)
    {
        int seed = Random.Shared.Next();
        return (new Random(seed), $"seed {seed}, {what}");
    }

    /// <summary>The GPU's result against the CPU's, and the aligned run against the one forced onto the scalar kernel.</summary>
    private static void AssertMatches(float[] cpu, float[] aligned, float[] scalar, string where, bool exactTwins, double twinTolerance = 1e-3)
    {
        double error = DenseReference.RelativeError(aligned, cpu);
        Assert.True(error < CpuTolerance, $"{where}: GPU vs CPU {error:e2}");
        if (exactTwins)
        {
            int differing = aligned.Zip(scalar, (a, s) => BitConverter.SingleToInt32Bits(a) == BitConverter.SingleToInt32Bits(s) ? 0 : 1).Sum();
            Assert.True(differing == 0, $"{where}: {differing} of {aligned.Length} elements differ between the aligned and the scalar run");
        }
        else
        {
            double twins = DenseReference.RelativeError(aligned, scalar);
            Assert.True(twins < twinTolerance, $"{where}: aligned vs scalar run {twins:e2}");
        }
    }

    private static float[] Read(IBackend b, Tensor t)
    {
        var values = new float[t.Length];
        b.Download<float>(t, values);
        return values;
    }

    /// <summary>
    /// Values uploaded some elements (an offset) into a tensor of their own: offset 0 starts on the
    /// pool's (256-byte) alignment, offset 1 two bytes past it, off every 16-byte boundary.
    /// </summary>
    private sealed class Placed(Tensor storage, Tensor tensor) : IDisposable
    {
        public Tensor Tensor { get; } = tensor;

        public static Placed Upload(IBackend b, float[] values, int offset, params int[] shape)
        {
            var padded = new float[offset + values.Length];
            values.CopyTo(padded, offset);
            var storage = b.Upload<float>(padded, padded.Length);
            return new Placed(storage, storage.SliceRows(offset, values.Length).View(shape));
        }

        public void Dispose() => storage.Dispose();
    }
}
