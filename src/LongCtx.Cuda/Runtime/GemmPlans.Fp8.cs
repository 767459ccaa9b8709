using LongCtx.Cuda.Native;

namespace LongCtx.Cuda.Runtime;

/// <summary>How an FP8 GEMM's two scale vectors apply (cuBLASLt's scale modes of A, the weight, and B, the input).</summary>
internal enum Fp8GemmScaling
{
    /// <summary>A per output row × B per token: OUTER_VEC_32F both (per-tensor and static scales given as such vectors).</summary>
    Rows,
    /// <summary>A per 128 × 128 block (BLK128x128_32F, K-major, columns a multiple of 4 apart) × B per token and group of 128 (VEC128_32F, token-major).</summary>
    Blocks,
}

internal sealed unsafe partial class GemmPlans
{
    /// <summary>
    /// y = (x·Wᵀ with x, W e4m3 codes, each product of a row of W and a row of x scaled by their scales) (+ bias) (+ y):
    /// x [t, k], W [n, k] codes, y [t, n] bf16, fp32 inside. <paramref name="wScales"/> and <paramref name="xScales"/> are
    /// device floats laid out as <paramref name="scaling"/> says; t must be a multiple of 4 (cuBLASLt's block scales ask it).
    /// </summary>
    public void RunFp8(nint x, nint xScales, nint w, nint wScales, nint y, nint bias, int t, int k, int n, bool accumulate, Fp8GemmScaling scaling)
    {
        var plan = PlanFor(new GemmShape(t, k, n, bias != 0, AlignmentOf(w), AlignmentOf(x), AlignmentOf(y), scaling));
        CublasLt.Check(CublasLt.cublasLtMatmulDescSetAttribute(plan.Desc, CublasLt.DescAScalePointer, &wScales, (nuint)sizeof(nint)), "setting the FP8 GEMM's weight scales");
        CublasLt.Check(CublasLt.cublasLtMatmulDescSetAttribute(plan.Desc, CublasLt.DescBScalePointer, &xScales, (nuint)sizeof(nint)), "setting the FP8 GEMM's input scales");
        if (bias != 0)
            CublasLt.Check(CublasLt.cublasLtMatmulDescSetAttribute(plan.Desc, CublasLt.DescBiasPointer, &bias, (nuint)sizeof(nint)), "setting the GEMM's bias");
        float alpha = 1f, beta = accumulate ? 1f : 0f;
        var algo = plan.Algo;
        CublasLt.Check(CublasLt.cublasLtMatmul(_handle, plan.Desc, &alpha, w, plan.W, x, plan.X, &beta, y, plan.Y, y, plan.Y,
            &algo, _workspace, _workspaceBytes, _stream), $"the FP8 GEMM of {t}x{k} by {n}x{k}");
    }

    private void SetFp8Scaling(nint desc, Fp8GemmScaling scaling)
    {
        var (a, b) = scaling == Fp8GemmScaling.Rows
            ? (CublasLt.ScaleOuterVector, CublasLt.ScaleOuterVector)
            : (CublasLt.ScaleBlock128x128, CublasLt.ScaleVector128);
        // A cuBLASLt before 12.9 refuses the scale-mode attributes.
        if (CublasLt.cublasLtMatmulDescSetAttribute(desc, CublasLt.DescAScaleMode, &a, sizeof(int)) != 0
            || CublasLt.cublasLtMatmulDescSetAttribute(desc, CublasLt.DescBScaleMode, &b, sizeof(int)) != 0)
            throw new LongCtxException("this cuBLASLt has no FP8 row or block scales (CUBLASLT_MATMUL_DESC_A_SCALE_MODE): FP8 GEMMs need cuBLASLt 12.9 or later");
        sbyte fast = _fp8FastAccumulation ? (sbyte)1 : (sbyte)0;
        CublasLt.Check(CublasLt.cublasLtMatmulDescSetAttribute(desc, CublasLt.DescFastAccum, &fast, 1), "setting the FP8 GEMM's accumulation");
    }
}
