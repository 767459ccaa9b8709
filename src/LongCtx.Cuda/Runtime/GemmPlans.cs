using LongCtx.Cuda.Native;

namespace LongCtx.Cuda.Runtime;

/// <summary>
/// One GPU's GEMMs through cuBLASLt: y[t, n] = x[t, k]·W[n, k]ᵀ (+ bias) (+ y), bf16 in and out, fp32 inside, on the
/// compute stream. A plan (matmul descriptor, layouts, algorithm) per shape, bias and pointer alignment
/// is chosen once by cuBLASLt's heuristics and kept: a prefill runs the same four shapes in every layer, so the
/// heuristic query is paid once a shape.
/// </summary>
internal sealed unsafe partial class GemmPlans
{
    // Plans are a few host descriptors each; a server seeing many prompt lengths starts over past this many.
    private const int MaxPlans = 4096;

    private readonly nint _handle, _stream, _workspace;
    private readonly nuint _workspaceBytes;
    private readonly Dictionary<GemmShape, GemmPlan> _plans = [];
    private readonly bool _fp8FastAccumulation;

    /// <param name="workspaceMiB">cuBLASLt's workspace (<see cref="RuntimeSettings.GemmWorkspaceMiB"/>)</param>
    /// <param name="fp8FastAccumulation"><see cref="RuntimeSettings.Fp8FastAccumulation"/></param>
    public GemmPlans(nint stream, int workspaceMiB, bool fp8FastAccumulation = false)
    {
        _stream = stream;
        _fp8FastAccumulation = fp8FastAccumulation;
        CublasLt.Check(CublasLt.cublasLtCreate(out _handle), "cublasLtCreate");
        int mib = workspaceMiB;
        _workspaceBytes = (nuint)mib << 20;
        // Lives as long as the handle, i.e. the process (CudaDevice.Dispose).
        if (mib > 0) CudaDriver.Check(CudaDriver.cuMemAlloc(out _workspace, _workspaceBytes), "allocating the cuBLASLt workspace");
    }

    /// <summary>
    /// y = x·Wᵀ (+ bias, added in fp32 before y is rounded) (+ y when <paramref name="accumulate"/>, also in fp32:
    /// one rounding to bf16). x [t, k], W [n, k], y [t, n], bias [n], all bf16 and row-major.
    /// </summary>
    public void Run(nint x, nint w, nint y, nint bias, int t, int k, int n, bool accumulate)
    {
        var plan = PlanFor(new GemmShape(t, k, n, bias != 0, AlignmentOf(w), AlignmentOf(x), AlignmentOf(y)));
        if (bias != 0)
            CublasLt.Check(CublasLt.cublasLtMatmulDescSetAttribute(plan.Desc, CublasLt.DescBiasPointer, &bias, (nuint)sizeof(nint)), "setting the GEMM's bias");
        float alpha = 1f, beta = accumulate ? 1f : 0f;
        var algo = plan.Algo;
        // Row-major y[t, n] = x·Wᵀ is column-major yᵀ[n, t] = W·xᵀ: A = W (transposed), B = x, C = D = y.
        CublasLt.Check(CublasLt.cublasLtMatmul(_handle, plan.Desc, &alpha, w, plan.W, x, plan.X, &beta, y, plan.Y, y, plan.Y,
            &algo, _workspace, _workspaceBytes, _stream), $"the GEMM of {t}x{k} by {n}x{k}");
    }

    private GemmPlan PlanFor(GemmShape shape)
    {
        if (_plans.TryGetValue(shape, out var plan)) return plan;
        if (_plans.Count >= MaxPlans) Clear();
        return _plans[shape] = Plan(shape);
    }

    private GemmPlan Plan(GemmShape s)
    {
        CublasLt.Check(CublasLt.cublasLtMatmulDescCreate(out var desc, CublasLt.Compute32F, CublasLt.R32F), "cublasLtMatmulDescCreate");
        int transW = CublasLt.OpT, transX = CublasLt.OpN;
        SetDesc(desc, CublasLt.DescTransA, transW);
        SetDesc(desc, CublasLt.DescTransB, transX);
        if (s.Bias)
        {
            SetDesc(desc, CublasLt.DescEpilogue, CublasLt.EpilogueBias);
            SetDesc(desc, CublasLt.DescBiasDataType, CublasLt.R16BF);
        }
        if (s.Fp8 is { } scaling) SetFp8Scaling(desc, scaling);
        int inputs = s.Fp8 is null ? CublasLt.R16BF : CublasLt.R8FE4M3;
        var plan = new GemmPlan { Desc = desc, W = Layout(s.K, s.N, inputs), X = Layout(s.K, s.T, inputs), Y = Layout(s.N, s.T) };
        CublasLt.Check(CublasLt.cublasLtMatmulPreferenceCreate(out var preference), "cublasLtMatmulPreferenceCreate");
        try
        {
            ulong workspace = _workspaceBytes;
            CublasLt.Check(CublasLt.cublasLtMatmulPreferenceSetAttribute(preference, CublasLt.PreferenceMaxWorkspace, &workspace, sizeof(ulong)), "setting the GEMM workspace");
            // The heuristics assume 256-byte aligned pointers unless told: a row slice or an odd row length is not.
            SetAlignment(preference, CublasLt.PreferenceAlignmentA, s.AlignW);
            SetAlignment(preference, CublasLt.PreferenceAlignmentB, s.AlignX);
            SetAlignment(preference, CublasLt.PreferenceAlignmentC, s.AlignY);
            SetAlignment(preference, CublasLt.PreferenceAlignmentD, s.AlignY);
            CublasLt.HeuristicResult result;
            int status = CublasLt.cublasLtMatmulAlgoGetHeuristic(_handle, desc, plan.W, plan.X, plan.Y, plan.Y, preference, 1, &result, out int found);
            if (status != CublasLt.StatusNotSupported) CublasLt.Check(status, "cublasLtMatmulAlgoGetHeuristic");
            if (status == CublasLt.StatusNotSupported || found == 0)
                throw new LongCtxException($"cuBLASLt has no algorithm for the GEMM of {s.T}x{s.K} by {s.N}x{s.K} ({(s.Fp8 is { } f ? $"fp8 e4m3, {f} scales" : "bf16")}, alignments {s.AlignX}/{s.AlignW}/{s.AlignY} bytes)" +
                    (s.Fp8 is null ? "" : "; FP8 GEMMs with row and block scales need cuBLASLt 12.9 or later on Hopper"));
            plan.Algo = result.Algo;
        }
        catch
        {
            plan.Dispose();
            throw;
        }
        finally { CublasLt.cublasLtMatmulPreferenceDestroy(preference); }
        return plan;
    }

    private static void SetDesc(nint desc, int attribute, int value) =>
        CublasLt.Check(CublasLt.cublasLtMatmulDescSetAttribute(desc, attribute, &value, sizeof(int)), "cublasLtMatmulDescSetAttribute");

    private static void SetAlignment(nint preference, int attribute, int bytes)
    {
        uint value = (uint)bytes;
        CublasLt.Check(CublasLt.cublasLtMatmulPreferenceSetAttribute(preference, attribute, &value, sizeof(uint)), "setting a GEMM alignment");
    }

    /// <summary>A column-major matrix (bf16 unless said) of the given rows (the leading dimension) and columns.</summary>
    private static nint Layout(int rows, int cols, int type = CublasLt.R16BF)
    {
        CublasLt.Check(CublasLt.cublasLtMatrixLayoutCreate(out var layout, type, (ulong)rows, (ulong)cols, rows), "cublasLtMatrixLayoutCreate");
        return layout;
    }

    /// <summary>The largest power of two up to 256 dividing the address.</summary>
    private static int AlignmentOf(nint pointer)
    {
        long lowest = (long)pointer & -(long)pointer;
        return lowest is 0 or > 256 ? 256 : (int)lowest;
    }

    private void Clear()
    {
        foreach (var plan in _plans.Values) plan.Dispose();
        _plans.Clear();
    }

    private readonly record struct GemmShape(int T, int K, int N, bool Bias, int AlignW, int AlignX, int AlignY, Fp8GemmScaling? Fp8 = null);

    private sealed class GemmPlan : IDisposable
    {
        public nint Desc, W, X, Y;
        public CublasLt.Algorithm Algo;

        public void Dispose()
        {
            if (W != 0) CublasLt.cublasLtMatrixLayoutDestroy(W);
            if (X != 0) CublasLt.cublasLtMatrixLayoutDestroy(X);
            if (Y != 0) CublasLt.cublasLtMatrixLayoutDestroy(Y);
            CublasLt.cublasLtMatmulDescDestroy(Desc);
        }
    }
}
