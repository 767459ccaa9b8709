using System.Numerics;
using System.Runtime.CompilerServices;
using LongCtx.Quantization;
using LongCtx.Tensors;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace LongCtx.Backends.Cpu;

/// <summary>
/// Flash attention on the CPU in float32: queries in tiles, keys streamed in tiles, an online softmax
/// (running max m, running sum l, rescaled accumulator) so only a tile of scores ever exists — never the
/// Tq × Tk matrix. The heads that share one KV head (grouped-query attention) are processed together so
/// each key and value row loaded serves all of them. Key tiles the mask (with the rule's window) hides entirely are
/// skipped; tiles it shows entirely skip the per-element mask. K and V may be the FP8 cache's codes: each visible key
/// tile's rows of one KV head are read as code · Scale (exact in float32 for bf16 scales) into the worker's scratch.
/// </summary>
internal static unsafe class CpuAttention
{
    private const int QueryTile = 16, KeyTile = 64;

    public static void Run(CpuTensor q, TokenLayout queries, CpuTensor k, CpuTensor v, TokenLayout keys, AttentionRule rule,
        CpuTensor output, CpuTensor lse, ParallelOptions parallel)
    {
        int tq = q.Rows, tk = k.Rows;
        int heads = q.Shape[1], d = q.Shape[2], kvHeads = k.Shape[1];
        if (queries.Count != tq || keys.Count != tk || k.Shape[2] != d || v.Rows != tk || heads % kvHeads != 0)
            throw new ArgumentException($"Attention: q {q} ({queries.Count} positions), k {k} ({keys.Count} positions), v {v} do not fit");
        if (tq == 0) return;
        int group = heads / kvHeads;
        float scale = rule.Scale;
        int window = rule.Window ?? int.MaxValue;
        var queryTiles = TileSpan.Of(queries, QueryTile);
        var keyTiles = TileSpan.Of(keys, KeyTile);
        float* qp = (float*)q.Data, op = (float*)output.Data, lp = (float*)lse.Data;

        System.Threading.Tasks.Parallel.For(0, queryTiles.Length * kvHeads, parallel, () => new Scratch(QueryTile * group, KeyTile, d), (item, _, s) =>
        {
            var qt = queryTiles[item / kvHeads];
            int g = item % kvHeads, rows = qt.Count * group;
            s.Reset(rows);
            // Row r of the tile is query qt.Start + r / group, head g * group + r % group, pre-scaled.
            for (int r = 0; r < rows; r++)
            {
                int t = qt.Start + r / group, h = g * group + r % group;
                TensorPrimitives.Multiply(new ReadOnlySpan<float>(qp + ((long)t * heads + h) * d, d), scale, s.Q.AsSpan(r * d, d));
            }
            fixed (float* kScratch = s.K, vScratch = s.V)
                foreach (var kt in keyTiles)
                {
                    var visibility = TileSpan.Visibility(qt, kt, window);
                    if (visibility == TileVisibility.None) continue;
                    Scores(s, rows, KeyRows(k, kt, kvHeads, g, d, kScratch, out long kStride), kStride, kt.Count, d);
                    if (rule.SoftCap is float cap) SoftCap(s, rows, kt.Count, cap);
                    if (visibility == TileVisibility.Partial) Mask(s, rows, group, queries, qt, keys, kt, window);
                    Accumulate(s, rows, KeyRows(v, kt, kvHeads, g, d, vScratch, out long vStride), vStride, kt.Count, d);
                }
            for (int r = 0; r < rows; r++)
            {
                int t = qt.Start + r / group, h = g * group + r % group;
                var o = new Span<float>(op + ((long)t * heads + h) * d, d);
                float l = s.L[r];
                if (l == 0f)
                {
                    o.Clear();
                    lp[(long)t * heads + h] = float.NegativeInfinity;
                }
                else
                {
                    TensorPrimitives.Multiply(s.Acc.AsSpan(r * d, d), 1f / l, o);
                    lp[(long)t * heads + h] = s.M[r] + MathF.Log(l);
                }
            }
            return s;
        }, _ => { });
    }

    // The rows of key tile kt of KV head g in t (K or V), the first at the pointer returned and the next each stride
    // floats on: t's own when float32, else the FP8 codes' values widened into scratch.
    private static float* KeyRows(CpuTensor t, TileSpan kt, int kvHeads, int g, int d, float* scratch, out long stride)
    {
        long rowStride = (long)kvHeads * d, first = kt.Start * rowStride + (long)g * d;
        if (t.DType != DType.F8E4M3)
        {
            stride = rowStride;
            return (float*)t.Data + first;
        }
        for (int j = 0; j < kt.Count; j++)
            E4M3.Dequantize(new ReadOnlySpan<byte>(t.Data + first + j * rowStride, d), t.Scale, new Span<float>(scratch + j * d, d));
        stride = d;
        return scratch;
    }

    // S[r, j] = q_r · k_j for the count keys from k0 on, stride floats apart.
    private static void Scores(Scratch s, int rows, float* k0, long stride, int count, int d)
    {
        fixed (float* q = s.Q, sc = s.S)
        {
            for (int j = 0; j < count; j++)
            {
                float* kr = k0 + j * stride;
                int r = 0;
                for (; r + 4 <= rows; r += 4)
                    Dot4(q + r * d, kr, d, out sc[r * KeyTile + j], out sc[(r + 1) * KeyTile + j], out sc[(r + 2) * KeyTile + j], out sc[(r + 3) * KeyTile + j]);
                for (; r < rows; r++) sc[r * KeyTile + j] = CpuLinear.Dot(q + r * d, kr, d);
            }
        }
    }

    // S = cap · tanh(S / cap) on the tile's scores (which the pre-scaled queries made scale · q·k).
    private static void SoftCap(Scratch s, int rows, int count, float cap)
    {
        for (int r = 0; r < rows; r++)
        {
            var row = s.S.AsSpan(r * KeyTile, count);
            TensorPrimitives.Divide(row, cap, row);
            TensorPrimitives.Tanh(row, row);
            TensorPrimitives.Multiply(row, cap, row);
        }
    }

    private static void Mask(Scratch s, int rows, int group, TokenLayout queries, TileSpan qt, TokenLayout keys, TileSpan kt, int window)
    {
        for (int r = 0; r < rows; r++)
        {
            int t = qt.Start + r / group, seq = queries.SeqIds[t], pos = queries.Positions[t];
            var row = s.S.AsSpan(r * KeyTile, kt.Count);
            for (int j = 0; j < kt.Count; j++)
            {
                int key = keys.Positions[kt.Start + j];
                if (keys.SeqIds[kt.Start + j] != seq || key > pos || pos - key >= window) row[j] = float.NegativeInfinity;
            }
        }
    }

    // The online softmax step: rescale what was accumulated to the new running max, add exp(S - m)·V.
    private static void Accumulate(Scratch s, int rows, float* v0, long stride, int n, int d)
    {
        for (int r = 0; r < rows; r++)
        {
            var row = s.S.AsSpan(r * KeyTile, n);
            float tileMax = TensorPrimitives.Max(row);
            float m = Math.Max(s.M[r], tileMax);
            if (float.IsNegativeInfinity(m))
            {
                row.Clear(); // nothing visible yet for this row: contributes nothing
                continue;
            }
            float alpha = float.IsNegativeInfinity(s.M[r]) ? 0f : MathF.Exp(s.M[r] - m);
            TensorPrimitives.Subtract(row, m, row);
            TensorPrimitives.Exp(row, row);
            s.L[r] = s.L[r] * alpha + TensorPrimitives.Sum(row);
            s.M[r] = m;
            if (alpha != 1f) TensorPrimitives.Multiply(s.Acc.AsSpan(r * s.D, s.D), alpha, s.Acc.AsSpan(r * s.D, s.D));
        }
        fixed (float* acc = s.Acc, p = s.S)
        {
            int r = 0;
            for (; r + 4 <= rows; r += 4) AddPv4(acc + r * d, p + r * KeyTile, v0, stride, n, d);
            for (; r < rows; r++)
                for (int j = 0; j < n; j++)
                {
                    float pj = p[r * KeyTile + j];
                    if (pj == 0f) continue;
                    float* vr = v0 + j * stride;
                    TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(vr, d), pj, new ReadOnlySpan<float>(acc + r * d, d), new Span<float>(acc + r * d, d));
                }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<float> Load(float* p) => Unsafe.ReadUnaligned<Vector<float>>(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(Vector<float> x, float* p) => Unsafe.WriteUnaligned(p, x);

    private static void Dot4(float* q, float* k, int d, out float s0, out float s1, out float s2, out float s3)
    {
        int step = Vector<float>.Count, e = 0;
        Vector<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (; e + step <= d; e += step)
        {
            var kv = Load(k + e);
            a0 = Vector.FusedMultiplyAdd(Load(q + e), kv, a0);
            a1 = Vector.FusedMultiplyAdd(Load(q + d + e), kv, a1);
            a2 = Vector.FusedMultiplyAdd(Load(q + 2 * d + e), kv, a2);
            a3 = Vector.FusedMultiplyAdd(Load(q + 3 * d + e), kv, a3);
        }
        s0 = Vector.Sum(a0); s1 = Vector.Sum(a1); s2 = Vector.Sum(a2); s3 = Vector.Sum(a3);
        for (; e < d; e++)
        {
            s0 += q[e] * k[e]; s1 += q[d + e] * k[e]; s2 += q[2 * d + e] * k[e]; s3 += q[3 * d + e] * k[e];
        }
    }

    // acc[0..3] += Σ_j p[0..3][j] · v_j, a vector of the head dimension at a time held in registers.
    private static void AddPv4(float* acc, float* p, float* v0, long vStride, int count, int d)
    {
        int step = Vector<float>.Count, e = 0;
        for (; e + step <= d; e += step)
        {
            Vector<float> c0 = Load(acc + e), c1 = Load(acc + d + e), c2 = Load(acc + 2 * d + e), c3 = Load(acc + 3 * d + e);
            for (int j = 0; j < count; j++)
            {
                var vv = Load(v0 + j * vStride + e);
                c0 = Vector.FusedMultiplyAdd(new Vector<float>(p[j]), vv, c0);
                c1 = Vector.FusedMultiplyAdd(new Vector<float>(p[KeyTile + j]), vv, c1);
                c2 = Vector.FusedMultiplyAdd(new Vector<float>(p[2 * KeyTile + j]), vv, c2);
                c3 = Vector.FusedMultiplyAdd(new Vector<float>(p[3 * KeyTile + j]), vv, c3);
            }
            Store(c0, acc + e); Store(c1, acc + d + e); Store(c2, acc + 2 * d + e); Store(c3, acc + 3 * d + e);
        }
        for (; e < d; e++)
            for (int j = 0; j < count; j++)
            {
                float vv = v0[j * vStride + e];
                acc[e] += p[j] * vv; acc[d + e] += p[KeyTile + j] * vv;
                acc[2 * d + e] += p[2 * KeyTile + j] * vv; acc[3 * d + e] += p[3 * KeyTile + j] * vv;
            }
    }

    /// <summary>Per-worker buffers: pre-scaled queries, one tile of scores, the accumulator, the softmax state and a key tile's widened K and V.</summary>
    private sealed class Scratch(int rows, int keyTile, int d)
    {
        public readonly int D = d;
        public readonly float[] Q = new float[rows * d], S = new float[rows * keyTile], Acc = new float[rows * d];
        public readonly float[] K = new float[keyTile * d], V = new float[keyTile * d];
        public readonly float[] M = new float[rows], L = new float[rows];

        public void Reset(int used)
        {
            Array.Clear(Acc, 0, used * D);
            Array.Fill(M, float.NegativeInfinity, 0, used);
            Array.Clear(L, 0, used);
        }
    }
}
