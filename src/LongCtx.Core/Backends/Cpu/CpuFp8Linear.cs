using LongCtx.Quantization;

namespace LongCtx.Backends.Cpu;

/// <summary>
/// The FP8 linear layer with the exact semantics of bench/reference/FP8.md: x quantised as the weight's scheme says
/// (<see cref="Fp8Quantizer"/>), then y[t, n] = Σ_g (Σ_{k in g} qa[t, k]·qw[n, k]) · sa[t, g] · sw[n, g] — the products
/// of e4m3 values exact in float32, each group's sum in float32 (<see cref="CpuLinear.Tile"/> on the codes' values),
/// the scales applied to the sum. One group is the whole row except for the 128-column schemes.
/// </summary>
internal static unsafe class CpuFp8Linear
{
    public static void Run(CpuTensor x, CpuTensor w, CpuTensor? bias, CpuTensor y, bool accumulate, IQuantizationHook? hook, ParallelOptions parallel)
    {
        var f = w.Fp8 ?? throw new ArgumentException($"{w} has no FP8 scales");
        int t = x.Rows, k = x.RowLength, n = w.Rows;
        if (w.RowLength != k || y.Rows != t || y.RowLength != n)
            throw new ArgumentException($"Linear: x {x}, weight {w}, y {y} do not fit y = x·Wᵀ");
        if (t == 0 || n == 0) return;
        var (values, scales) = QuantizeInput(f.Activations, x, w.Name ?? "", hook, parallel);
        int groups = f.Groups(k), length = k / groups, perRow = f.Activations.ScalesPerRow(k);
        bool isStatic = f.Activations.Scaling == Fp8ActivationScaling.Static;
        float[]? biasRow = bias is null ? null : new float[n];
        if (bias is not null) WeightRows.Read(bias, 0, biasRow);
        float* yp = (float*)y.Data;

        const int nbMax = CpuLinear.WeightBlock, tbMax = CpuLinear.TokenBlock;
        int weightBlocks = (n + nbMax - 1) / nbMax, tokenBlocks = (t + tbMax - 1) / tbMax;
        System.Threading.Tasks.Parallel.For(0, weightBlocks * tokenBlocks, parallel, () => new Scratch(nbMax * k, tbMax * nbMax), (item, _, s) =>
        {
            int n0 = item / tokenBlocks * nbMax, nb = Math.Min(nbMax, n - n0);
            int t0 = item % tokenBlocks * tbMax, tb = Math.Min(tbMax, t - t0);
            WeightRows.Read(w, (long)n0 * k, s.Weights.AsSpan(0, nb * k));
            Array.Clear(s.Sum, 0, tb * nb);
            fixed (float* xv = values, wv = s.Weights, raw = s.Raw)
                for (int g = 0; g < groups; g++)
                {
                    CpuLinear.Tile(xv + (long)t0 * k + g * length, wv + g * length, raw, tb, nb, length, k, nb, accumulate: false);
                    for (int i = 0; i < tb; i++)
                    {
                        float sa = scales[isStatic ? 0 : (t0 + i) * perRow + (perRow > 1 ? g : 0)];
                        for (int j = 0; j < nb; j++) s.Sum[i * nb + j] += raw[i * nb + j] * sa * f.WeightScale(n0 + j, g, groups);
                    }
                }
            for (int i = 0; i < tb; i++)
            {
                float* row = yp + (long)(t0 + i) * n + n0;
                for (int j = 0; j < nb; j++)
                {
                    float v = s.Sum[i * nb + j] + (biasRow is null ? 0f : biasRow[n0 + j]);
                    row[j] = accumulate ? row[j] + v : v;
                }
            }
            return s;
        }, _ => { });
    }

    /// <summary>x quantised: the values of its codes [T, K] and its scales, after the hook has seen (and maybe replaced) them.</summary>
    private static (float[] Values, float[] Scales) QuantizeInput(Fp8Activations scheme, CpuTensor x, string weight, IQuantizationHook? hook, ParallelOptions parallel)
    {
        int t = x.Rows, k = x.RowLength;
        var codes = new byte[t * k];
        var scales = new float[scheme.ScaleCount(t, k)];
        System.Threading.Tasks.Parallel.For(0, t, parallel, r => Fp8Quantizer.Row(scheme, x.F32, r, k, codes, scales));
        hook?.Activations(weight, x.F32, t, codes, scales);
        var values = new float[t * k];
        var table = E4M3.Values;
        for (int i = 0; i < values.Length; i++) values[i] = table[codes[i]];
        return (values, scales);
    }

    private sealed class Scratch(int weights, int tile)
    {
        public readonly float[] Weights = new float[weights], Raw = new float[tile], Sum = new float[tile];
    }
}
