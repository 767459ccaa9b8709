using LongCtx.Backends;
using LongCtx.Cuda.Runtime;
using LongCtx.Tensors;

namespace LongCtx.Cuda.Ops;

/// <summary>
/// The projections: cuBLASLt for prefill-sized x; for decode-sized x the own GEMVs, which read each weight once for
/// all rows of x — Kernels/gemv.cu on CUDA cores up to 4 rows (with the layer's RMSNorm folded in), Kernels/gemv_mma.cu
/// on tensor cores for 5 to 16 (a batch of sequences decoding together) — and rotate q and k on the way out.
/// </summary>
public sealed unsafe partial class CudaBackend
{
    private const string GemvSource = "gemv.cu", GemvMmaSource = "gemv_mma.cu";
    // Kernels/gemv.cu: each warp streams one weight row for up to 4 rows of x, 8 warps a block. Kernels/gemv_mma.cu:
    // a block takes 16 outputs (the MMA's rows) for up to 16 rows of x, its 8 warps splitting the row length.
    private const int GemvMaxRows = 4, GemvMmaMaxRows = 16, GemvWarpsPerBlock = 8, GemvMmaOutputsPerBlock = 16;

    public void Linear(Tensor x, Tensor weight, Tensor? bias, Tensor y)
    {
        if (IsFp8(weight)) LinearFp8(C(x), C(weight), bias is null ? null : C(bias), C(y), accumulate: false);
        else Gemm(C(x), C(weight), C(y), beta: 0f, bias is null ? null : C(bias));
    }

    /// <summary>Decode-sized x (up to 16 rows) through gemv3 or gemv3_mma, one launch for up to three projections without biases.</summary>
    public void LinearEach(Tensor x, params ReadOnlySpan<(Tensor Weight, Tensor? Bias, Tensor Y)> projections)
    {
        if (AnyFp8(projections))
        {
            ProjectionsWithFp8(C(x), null, null, projections);
            return;
        }
        if (TryGemv3(C(x), null, 0f, projections)) return;
        foreach (var (weight, bias, y) in projections) Linear(x, weight, bias, y);
    }

    /// <summary>Decode-sized x: gemv3 normalises x itself (up to 4 rows: the norm's launch saved, h left unwritten).</summary>
    public void NormedLinearEach(Tensor x, Tensor normWeight, float eps, Tensor h, params ReadOnlySpan<(Tensor Weight, Tensor? Bias, Tensor Y)> projections)
    {
        if (AnyFp8(projections))
        {
            ProjectionsWithFp8(C(x), (C(normWeight), eps), h, projections);
            return;
        }
        if (NormFuses(C(x), C(normWeight)) && TryGemv3(C(x), C(normWeight), eps, projections)) return;
        RmsNorm(x, normWeight, eps, h);
        LinearEach(h, projections);
    }

    /// <summary>
    /// Decode-sized x: gemv3 (up to 4 rows) normalises x and rotates q and k on the way out, gemv3_mma (5 to 16)
    /// rotates them after the norm's own launch (the launches saved, h unwritten by gemv3); the bits of the separate
    /// calls.
    /// </summary>
    public void NormedRotatedQkv(Tensor x, Tensor normWeight, float eps, Tensor h, (Tensor Weight, Tensor? Bias, Tensor Y) q,
        (Tensor Weight, Tensor? Bias, Tensor Y) k, (Tensor Weight, Tensor? Bias, Tensor Y) v, TokenLayout layout, RopeTable rope)
    {
        int d = rope.HeadDim;
        Check(layout.Count == x.Rows && q.Y.RowLength % d == 0 && k.Y.RowLength % d == 0,
            $"NormedRotatedQkv: q {q.Y} and k {k.Y} for head dim {d}, {x.Rows} rows with {layout.Count} positions");
        if (AnyFp8([q, k, v]))
        {
            ProjectionsWithFp8(C(x), (C(normWeight), eps), h, [q, k, v]);
            RopeTogether(C(q.Y.View(q.Y.Rows, q.Y.RowLength / d, d)), C(k.Y.View(k.Y.Rows, k.Y.RowLength / d, d)), layout, rope);
            return;
        }
        if (NormFuses(C(x), C(normWeight)) && TryGemv3(C(x), C(normWeight), eps, [q, k, v], (layout, rope))) return;
        RmsNorm(x, normWeight, eps, h);
        if (TryGemv3(C(h), null, 0f, [q, k, v], (layout, rope))) return;
        LinearEach(h, q, k, v);
        RopeTogether(C(q.Y.View(q.Y.Rows, q.Y.RowLength / d, d)), C(k.Y.View(k.Y.Rows, k.Y.RowLength / d, d)), layout, rope);
    }

    /// <summary>
    /// gemv3 for up to three projections of decode-sized x without biases; with <paramref name="rotation"/>, the
    /// first two (q and k) leave rotated.
    /// </summary>
    private bool TryGemv3(CudaTensor xs, CudaTensor? norm, float eps, ReadOnlySpan<(Tensor Weight, Tensor? Bias, Tensor Y)> projections,
        (TokenLayout Layout, RopeTable Rope)? rotation = null)
    {
        if (projections.Length is 0 or > 3) return false;
        var kind = GemvFor(xs, C(projections[0].Weight), C(projections[0].Y));
        foreach (var (weight, bias, y) in projections)
            if (GemvFor(xs, C(weight), C(y)) != kind || bias is not null) return false;
        if (kind == Gemv.TensorCores && norm is null && (rotation is null || rotation.Value.Rope.HeadDim % 16 == 0))
        {
            var each = new (CudaTensor, CudaTensor)[projections.Length];
            for (int i = 0; i < each.Length; i++) each[i] = (C(projections[i].Weight), C(projections[i].Y));
            LaunchGemv3Mma(xs, each, accumulate: false, rotation);
            return true;
        }
        if (kind != Gemv.CudaCores) return false;
        KernelArg[] args = [xs.Pointer, xs.RowLength, 0, 0, 0, 0, 0, 0, 0, 0, 0, norm?.Pointer ?? 0, eps, 0, 0, 0, 0f];
        int units = 0;
        for (int i = 0; i < projections.Length; i++)
        {
            var (weight, _, y) = projections[i];
            (args[2 + 3 * i], args[3 + 3 * i], args[4 + 3 * i]) = (C(weight).Pointer, C(y).Pointer, weight.Rows);
            // A rotated projection's warp takes a pair of outputs.
            units += rotation is not null && i < 2 ? weight.Rows / 2 : weight.Rows;
        }
        if (rotation is { } r)
            (args[13], args[14], args[15], args[16]) = (_layouts.Of(r.Layout).Positions.Pointer, RopeInvFreq(r.Rope).Pointer, r.Rope.HeadDim / 2, r.Rope.AttentionScale);
        var gemv3 = _device.Function(GemvSource, "gemv3", $"ROWS={xs.Rows}", $"NORM={(norm is null ? 0 : 1)}", $"ROPE={(rotation is null ? 0 : 1)}");
        _device.Timed("gemm", () => _device.LaunchDependent(gemv3, ((uint)CeilDiv(units, GemvWarpsPerBlock), 1), GemvWarpsPerBlock * 32, NormedBytes(xs, norm), args));
        return true;
    }

    /// <summary>Decode-sized x through gemv_swiglu (gemv_swiglu_mma past 4 rows): both projections and SwiGLU in one launch, the same bits as apart.</summary>
    public void SwiGluLinear(Tensor x, Tensor gateWeight, Tensor upWeight, Tensor y, Tensor up)
    {
        if (IsFp8(gateWeight) || IsFp8(upWeight))
        {
            SwiGluFp8(C(x), null, null, gateWeight, upWeight, y, up);
            return;
        }
        if (TryGemvSwiGlu(C(x), null, 0f, C(gateWeight), C(upWeight), C(y))) return;
        Linear(x, gateWeight, null, y);
        Linear(x, upWeight, null, up);
        SwiGlu(y, up, y);
    }

    /// <summary>Decode-sized x: gemv_swiglu normalises x itself (the norm's launch saved, h left unwritten).</summary>
    public void NormedSwiGluLinear(Tensor x, Tensor normWeight, float eps, Tensor h, Tensor gateWeight, Tensor upWeight, Tensor y, Tensor up)
    {
        if (IsFp8(gateWeight) || IsFp8(upWeight))
        {
            SwiGluFp8(C(x), (C(normWeight), eps), h, gateWeight, upWeight, y, up);
            return;
        }
        if (NormFuses(C(x), C(normWeight)) && TryGemvSwiGlu(C(x), C(normWeight), eps, C(gateWeight), C(upWeight), C(y))) return;
        RmsNorm(x, normWeight, eps, h);
        SwiGluLinear(h, gateWeight, upWeight, y, up);
    }

    private bool TryGemvSwiGlu(CudaTensor xs, CudaTensor? norm, float eps, CudaTensor g, CudaTensor u, CudaTensor ys)
    {
        var kind = GemvFor(xs, g, ys);
        if (GemvFor(xs, u, ys) != kind) return false;
        if (kind == Gemv.TensorCores && norm is null)
        {
            var mma = _device.Function(GemvMmaSource, "gemv_swiglu_mma", $"ROWS={xs.Rows}");
            _device.Timed("gemm", () => _device.LaunchDependent(mma, ((uint)CeilDiv(g.Rows, GemvMmaOutputsPerBlock), 1), GemvWarpsPerBlock * 32, 0,
                xs.Pointer, g.Pointer, u.Pointer, ys.Pointer, g.Rows, xs.RowLength));
            return true;
        }
        if (kind != Gemv.CudaCores) return false;
        var fn = _device.Function(GemvSource, "gemv_swiglu", $"ROWS={xs.Rows}", $"NORM={(norm is null ? 0 : 1)}");
        _device.Timed("gemm", () => _device.LaunchDependent(fn, ((uint)CeilDiv(g.Rows, GemvWarpsPerBlock), 1), GemvWarpsPerBlock * 32, NormedBytes(xs, norm),
            xs.Pointer, g.Pointer, u.Pointer, ys.Pointer, g.Rows, xs.RowLength, norm?.Pointer ?? 0, eps));
        return true;
    }

    /// <summary>
    /// Whether the GEMVs may normalise x themselves: gemv.cu's, up to 4 rows (normalising in every block did not pay
    /// in gemv_mma.cu's), with whole 16-byte groups on 16-byte boundaries (rms_norm_vec8's condition: the same code
    /// then gives the same bits), and the normalised rows within the default 48 KB of shared memory a block.
    /// </summary>
    private static bool NormFuses(CudaTensor x, CudaTensor normWeight) =>
        x.Rows <= GemvMaxRows && Vectorisable(x.RowLength, x.Pointer, normWeight.Pointer) && (long)x.Rows * x.RowLength * 2 <= 48 * 1024;

    /// <summary>The dynamic shared memory of a GEMV that normalises x: its rows in bf16; none without a norm.</summary>
    private static uint NormedBytes(CudaTensor x, CudaTensor? norm) => norm is null ? 0 : (uint)(x.Rows * x.RowLength * 2);

    private enum Gemv { None, CudaCores, TensorCores }

    /// <summary>
    /// Which own kernel takes y = x·Wᵀ: Kernels/gemv.cu for 1 to 4 rows of x, Kernels/gemv_mma.cu for 5 to 16 when
    /// the row length is a multiple of 32, neither (cuBLASLt) for more rows; either needs whole 16-byte groups on 16-byte
    /// boundaries in x and W. The shapes must agree whichever runs it: a mismatch throws here.
    /// </summary>
    private Gemv GemvFor(CudaTensor x, CudaTensor w, CudaTensor y)
    {
        Check(w.RowLength == x.RowLength && y.Rows == x.Rows && y.RowLength == w.Rows, $"Linear: x {x}, weight {w}, y {y}");
        if (!_ownGemv || x.Rows == 0 || !Vectorisable(x.RowLength, x.Pointer, w.Pointer)) return Gemv.None;
        if (x.Rows <= GemvMaxRows) return Gemv.CudaCores;
        return x.Rows <= GemvMmaMaxRows && x.RowLength % 32 == 0 ? Gemv.TensorCores : Gemv.None;
    }

    /// <summary>
    /// gemv3_mma: up to three projections of x (5 to 16 rows), 16 outputs a block; with <paramref name="rotation"/>
    /// (head dim a multiple of 16), the first two (q and k) leave rotated.
    /// </summary>
    private void LaunchGemv3Mma(CudaTensor xs, ReadOnlySpan<(CudaTensor Weight, CudaTensor Y)> projections, bool accumulate,
        (TokenLayout Layout, RopeTable Rope)? rotation = null)
    {
        KernelArg[] args = [xs.Pointer, xs.RowLength, 0, 0, 0, 0, 0, 0, 0, 0, 0, accumulate ? 1 : 0, 0, 0, 0, 0f];
        if (rotation is { } r)
            (args[12], args[13], args[14], args[15]) = (_layouts.Of(r.Layout).Positions.Pointer, RopeInvFreq(r.Rope).Pointer, r.Rope.HeadDim / 2, r.Rope.AttentionScale);
        int blocks = 0;
        for (int i = 0; i < projections.Length; i++)
        {
            var (weight, y) = projections[i];
            (args[2 + 3 * i], args[3 + 3 * i], args[4 + 3 * i]) = (weight.Pointer, y.Pointer, weight.Rows);
            blocks += CeilDiv(weight.Rows, GemvMmaOutputsPerBlock);
        }
        var fn = _device.Function(GemvMmaSource, "gemv3_mma", $"ROWS={xs.Rows}", $"ROPE={(rotation is null ? 0 : 1)}");
        _device.Timed("gemm", () => _device.LaunchDependent(fn, ((uint)blocks, 1), GemvWarpsPerBlock * 32, 0, args));
    }

    // beta = 1: cuBLASLt adds the product to y in fp32 and rounds to bf16 once.
    public void LinearAccumulate(Tensor x, Tensor weight, Tensor y)
    {
        if (IsFp8(weight)) LinearFp8(C(x), C(weight), null, C(y), accumulate: true);
        else Gemm(C(x), C(weight), C(y), beta: 1f);
    }

    private static bool AnyFp8(ReadOnlySpan<(Tensor Weight, Tensor? Bias, Tensor Y)> projections)
    {
        foreach (var p in projections)
            if (IsFp8(p.Weight)) return true;
        return false;
    }

    /// <summary>
    /// y = x·Wᵀ + beta·y, computed in fp32 (with beta 0 y is not read), + bias: in that fp32 sum where cuBLASLt's
    /// epilogue takes it, else by add_bias after.
    /// </summary>
    private void Gemm(CudaTensor xs, CudaTensor w, CudaTensor ys, float beta, CudaTensor? bias = null)
    {
        int t = xs.Rows, k = xs.RowLength, n = w.Rows;
        switch (GemvFor(xs, w, ys))
        {
            case Gemv.CudaCores:
                var gemv = _device.Function(GemvSource, "gemv", $"ROWS={t}");
                _device.Timed("gemm", () => _device.LaunchDependent(gemv, ((uint)CeilDiv(n, GemvWarpsPerBlock), 1), GemvWarpsPerBlock * 32, 0,
                    xs.Pointer, w.Pointer, ys.Pointer, n, k, beta == 0f ? 0 : 1));
                break;
            case Gemv.TensorCores:
                LaunchGemv3Mma(xs, [(w, ys)], accumulate: beta != 0f);
                break;
            default:
                if (t == 0) return;
                // cuBLASLt adds a 16-byte aligned bias in its epilogue (in fp32, before the one rounding).
                nint fused = bias is not null && bias.Pointer % 16 == 0 ? bias.Pointer : 0;
                _device.Timed("gemm", () => _device.Gemms.Run(xs.Pointer, w.Pointer, ys.Pointer, fused, t, k, n, accumulate: beta != 0f));
                if (fused != 0) return;
                break;
        }
        if (bias is not null && ys.Length > 0) _device.Launch(Fn("add_bias"), Grid(ys.Length), 256, 0, ys.Pointer, bias.Pointer, ys.Length, ys.RowLength);
    }
}
