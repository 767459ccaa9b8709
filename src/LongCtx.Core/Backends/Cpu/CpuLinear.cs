using System.Numerics;
using System.Runtime.CompilerServices;
using LongCtx.Tensors;

namespace LongCtx.Backends.Cpu;

/// <summary>
/// y[T, N] = x[T, K] · W[N, K]ᵀ (+ bias): the nn.Linear product in float32, or y += x · Wᵀ (accumulate).
/// The output is cut into (weight-row block × token block) tiles run in parallel; each tile widens its weight
/// rows once and then computes 4 tokens × 2 weight rows per pass over K so every loaded vector feeds several
/// multiply-adds. Accumulating adds each finished dot product to y, the same float sum as Run then an add.
/// </summary>
internal static unsafe class CpuLinear
{
    internal const int WeightBlock = 32, TokenBlock = 64;

    public static void Run(CpuTensor x, CpuTensor w, CpuTensor? bias, CpuTensor y, ParallelOptions parallel) =>
        Run(x, w, bias, y, accumulate: false, parallel);

    public static void Accumulate(CpuTensor x, CpuTensor w, CpuTensor y, ParallelOptions parallel) =>
        Run(x, w, null, y, accumulate: true, parallel);

    private static void Run(CpuTensor x, CpuTensor w, CpuTensor? bias, CpuTensor y, bool accumulate, ParallelOptions parallel)
    {
        int t = x.Rows, k = x.RowLength, n = w.Rows;
        if (w.RowLength != k || y.Rows != t || y.RowLength != n)
            throw new ArgumentException($"Linear: x {x}, weight {w}, y {y} do not fit y = x·Wᵀ");
        if (t == 0 || n == 0) return;
        float* xp = (float*)x.Data, yp = (float*)y.Data;
        float[]? biasRow = bias is null ? null : new float[n];
        if (bias is not null) WeightRows.Read(bias, 0, biasRow);

        int weightBlocks = (n + WeightBlock - 1) / WeightBlock, tokenBlocks = (t + TokenBlock - 1) / TokenBlock;
        System.Threading.Tasks.Parallel.For(0, weightBlocks * tokenBlocks, parallel, () => new float[WeightBlock * k], (item, _, scratch) =>
        {
            int n0 = item / tokenBlocks * WeightBlock, nb = Math.Min(WeightBlock, n - n0);
            int t0 = item % tokenBlocks * TokenBlock, tb = Math.Min(TokenBlock, t - t0);
            float* wp;
            fixed (float* s = scratch)
            {
                if (w.DType == DType.F32) wp = (float*)w.Data + (long)n0 * k;
                else
                {
                    WeightRows.Read(w, (long)n0 * k, scratch.AsSpan(0, nb * k));
                    wp = s;
                }
                Tile(xp + (long)t0 * k, wp, yp + (long)t0 * n + n0, tb, nb, k, k, n, accumulate);
            }
            if (biasRow is not null)
                for (int i = 0; i < tb; i++)
                    System.Numerics.Tensors.TensorPrimitives.Add(new ReadOnlySpan<float>(yp + (long)(t0 + i) * n + n0, nb), biasRow.AsSpan(n0, nb), new Span<float>(yp + (long)(t0 + i) * n + n0, nb));
            return scratch;
        }, _ => { });
    }

    /// <summary>
    /// y[i, j] (row stride ldy) = dot(x[i], w[j]) over k elements for i &lt; tb, j &lt; nb, rows of x and w
    /// <paramref name="stride"/> apart; += when accumulating.
    /// </summary>
    internal static void Tile(float* x, float* w, float* y, int tb, int nb, int k, int stride, int ldy, bool accumulate)
    {
        int i = 0;
        for (; i + 4 <= tb; i += 4)
        {
            int j = 0;
            for (; j + 2 <= nb; j += 2) Kernel4x2(x + (long)i * stride, w + (long)j * stride, y + (long)i * ldy + j, k, stride, ldy, accumulate);
            for (; j < nb; j++)
                for (int r = 0; r < 4; r++) Store(ref y[(long)(i + r) * ldy + j], Dot(x + (long)(i + r) * stride, w + (long)j * stride, k), accumulate);
        }
        for (; i < tb; i++)
            for (int j = 0; j < nb; j++) Store(ref y[(long)i * ldy + j], Dot(x + (long)i * stride, w + (long)j * stride, k), accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(ref float y, float dot, bool accumulate) => y = accumulate ? y + dot : dot;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<float> Load(float* p) => Unsafe.ReadUnaligned<Vector<float>>(p);

    private static void Kernel4x2(float* x, float* w, float* y, int k, int stride, int ldy, bool accumulate)
    {
        int step = Vector<float>.Count, e = 0;
        Vector<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
        float* x0 = x, x1 = x + stride, x2 = x + 2 * stride, x3 = x + 3 * stride, w0 = w, w1 = w + stride;
        for (; e + step <= k; e += step)
        {
            var v0 = Load(w0 + e);
            var v1 = Load(w1 + e);
            var u = Load(x0 + e); a00 = Vector.FusedMultiplyAdd(u, v0, a00); a01 = Vector.FusedMultiplyAdd(u, v1, a01);
            u = Load(x1 + e); a10 = Vector.FusedMultiplyAdd(u, v0, a10); a11 = Vector.FusedMultiplyAdd(u, v1, a11);
            u = Load(x2 + e); a20 = Vector.FusedMultiplyAdd(u, v0, a20); a21 = Vector.FusedMultiplyAdd(u, v1, a21);
            u = Load(x3 + e); a30 = Vector.FusedMultiplyAdd(u, v0, a30); a31 = Vector.FusedMultiplyAdd(u, v1, a31);
        }
        float s00 = Vector.Sum(a00), s01 = Vector.Sum(a01), s10 = Vector.Sum(a10), s11 = Vector.Sum(a11);
        float s20 = Vector.Sum(a20), s21 = Vector.Sum(a21), s30 = Vector.Sum(a30), s31 = Vector.Sum(a31);
        for (; e < k; e++)
        {
            s00 += x0[e] * w0[e]; s01 += x0[e] * w1[e];
            s10 += x1[e] * w0[e]; s11 += x1[e] * w1[e];
            s20 += x2[e] * w0[e]; s21 += x2[e] * w1[e];
            s30 += x3[e] * w0[e]; s31 += x3[e] * w1[e];
        }
        Store(ref y[0], s00, accumulate); Store(ref y[1], s01, accumulate);
        Store(ref y[ldy], s10, accumulate); Store(ref y[ldy + 1], s11, accumulate);
        Store(ref y[2 * ldy], s20, accumulate); Store(ref y[2 * ldy + 1], s21, accumulate);
        Store(ref y[3 * ldy], s30, accumulate); Store(ref y[3 * ldy + 1], s31, accumulate);
    }

    internal static float Dot(float* a, float* b, int k) =>
        System.Numerics.Tensors.TensorPrimitives.Dot(new ReadOnlySpan<float>(a, k), new ReadOnlySpan<float>(b, k));
}
