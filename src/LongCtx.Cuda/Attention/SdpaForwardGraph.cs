using static LongCtx.Cuda.Native.Cudnn;

namespace LongCtx.Cuda.Attention;

/// <summary>
/// Everything an SDPA plan is specialised on: one entry of the plan cache. <see cref="EngineConfig"/> is the
/// index among the engine configurations that finalize (heuristics order). <see cref="Fp8"/>: Q, K, V and O e4m3 with
/// per-tensor scales (<see cref="SdpaFp8Graph"/>).
/// </summary>
internal readonly record struct SdpaShape(int QueryHeads, int KvHeads, int HeadDim, int QueryRows, int KeyRows, bool Causal, int EngineConfig,
    bool Windowed = false, bool SoftCapped = false, bool Fp8 = false);

/// <summary>
/// Builds the operation graph cuDNN's fused flash-attention engines recognise — the one cudnn-frontend's
/// composite SDPA forward node lowers to — for our token-major tensors, and picks an engine for it:
///
///   S = Q·Kᵀ (fp32) → S·scale → [soft cap: S / cap, TANH, · cap] → [causal: GEN_INDEX row/col, row (+ Skv − Sq) ≥ col,
///   BINARY_SELECT −inf] → [window: GEN_INDEX row/col, col + left bound > row, BINARY_SELECT −inf]
///   → softmax as MAX, SUB, EXP, SUM, DIV (P in bf16) with Stats = max + log(sum) → O = P·V (bf16).
/// The soft cap and the two bounds are spelled as cudnn-frontend's score modifier and diagonal band masks spell them,
/// which is what the fused engines recognise; the left bound and the cap are by-value scalars, so one plan serves
/// every window position.
///
/// Q/O [tokens, heads, d] are cuDNN's [1, H, S, d] with strides [S·H·d, d, H·d, 1]; Kᵀ is K viewed as
/// [1, Hkv, d, S] with the last two strides swapped. Stats come out packed [1, H, S, 1] (cuDNN before 9.26
/// writes no other stats layout correctly), i.e. head-major; the caller transposes them.
/// </summary>
internal static class SdpaForwardGraph
{
    // Tensor ids of the variant pack; intermediates (virtual tensors) count up from 100.
    public const long QId = 1, KId = 2, VId = 3, OId = 4, StatsId = 5, ScaleId = 6, MaskValueId = 7, KeyRowsId = 8, QueryRowsId = 9,
        LeftBoundId = 10, SoftCapId = 11, WindowMaskValueId = 12;

    /// <summary>A plan, or null with cuDNN's reason when no engine takes this shape.</summary>
    public static SdpaPlan? TryBuild(nint handle, SdpaShape shape, long cudnnVersion, out string refusal)
    {
        if (KnownUnsupported(shape, cudnnVersion) is { } reason)
        {
            refusal = $"cuDNN {CudnnAttention.VersionText(cudnnVersion)} SDPA {Describe(shape)}: {reason}";
            return null;
        }
        var keep = new List<CudnnDescriptor>();
        try
        {
            var graph = shape.Fp8 ? SdpaFp8Graph.Build(handle, shape, keep) : BuildGraph(handle, shape, keep);
            int skip = shape.EngineConfig, found = 0;
            foreach (var mode in new[] { HeuristicsMode.A, HeuristicsMode.Fallback })
            {
                if (TryPlan(handle, graph, mode, keep, ref skip, out var plan, out int finalized) is { } workspace)
                {
                    refusal = "";
                    return new SdpaPlan(shape, plan!, workspace, keep, shape.Fp8 ? float.MinValue : MaskValue(cudnnVersion));
                }
                found += finalized;
            }
            refusal = shape.EngineConfig == 0
                ? $"no cuDNN engine supports SDPA {Describe(shape)} (heuristics modes A and fallback)"
                : $"cuDNN has {found} engine configuration(s) for SDPA {Describe(shape)}, not {shape.EngineConfig + 1}";
        }
        catch (LongCtxException e)
        {
            refusal = $"cuDNN SDPA {Describe(shape)}: {e.Message}";
        }
        foreach (var d in keep) d.Dispose();
        return null;
    }

    public static string Describe(SdpaShape s) =>
        $"{(s.Fp8 ? "fp8 " : "")}{(s.Causal ? "causal" : s.Windowed ? "windowed" : "unmasked")}{(s.Causal && s.Windowed ? " windowed" : "")}{(s.SoftCapped ? " soft-capped" : "")} " +
        $"{s.QueryRows}x{s.KeyRows}, {s.QueryHeads}/{s.KvHeads} heads, d={s.HeadDim}" + (s.EngineConfig > 0 ? $", engine configuration {s.EngineConfig}" : "");

    /// <summary>
    /// Why a shape must not go to this cuDNN though its engines may take it, as cudnn-frontend's support checks
    /// (node/sdpa_support_surface.h) say, which this graph bypasses: versions with known wrong results, and windows the
    /// engines do not support; null when none applies.
    /// </summary>
    internal static string? KnownUnsupported(SdpaShape s, long cudnnVersion)
    {
        if (s.Fp8)
            return cudnnVersion < 90100 ? "FP8 SDPA needs cuDNN 9.1.0 or later"
                : cudnnVersion == 91000 ? "cuDNN 9.10.0 has no working FP8 SDPA: use a later cuDNN"
                : null;
        if (cudnnVersion is 91000 or 91001) return "cuDNN 9.10.0 and 9.10.1 have known SDPA forward bugs: use 9.10.2 or later";
        if (!s.Windowed) return null;
        if (s.QueryRows > s.KeyRows) return "a sliding window needs at least as many keys as queries";
        if (!s.Causal && cudnnVersion < 91002) return "a sliding window without the causal mask needs cuDNN 9.10.2 or later";
        if (!s.Causal && cudnnVersion == 91400 && s.KeyRows > 1024)
            return "cuDNN 9.14.0 has a known bug with a sliding window over more than 1024 keys without the causal mask: use 9.14.1 or later";
        return null;
    }

    // cudnn-frontend masks with -inf from cuDNN 9.10 on and with the lowest float before.
    private static float MaskValue(long cudnnVersion) => cudnnVersion >= 91000 ? float.NegativeInfinity : float.MinValue;

    private static CudnnDescriptor BuildGraph(nint handle, SdpaShape s, List<CudnnDescriptor> keep)
    {
        long h = s.QueryHeads, hk = s.KvHeads, d = s.HeadDim, sq = s.QueryRows, skv = s.KeyRows;
        var g = new SdpaGraphBuilder(handle, s, keep);
        var q = g.Tensor(QId, DataType.BFloat16, [1, h, sq, d], [sq * h * d, d, h * d, 1]);
        var kT = g.Tensor(KId, DataType.BFloat16, [1, hk, d, skv], [skv * hk * d, d, 1, hk * d]);
        var v = g.Tensor(VId, DataType.BFloat16, [1, hk, skv, d], [skv * hk * d, d, hk * d, 1]);
        var o = g.Tensor(OId, DataType.BFloat16, [1, h, sq, d], [sq * h * d, d, h * d, 1]);
        var stats = g.Tensor(StatsId, DataType.Float, g.RowDims, g.RowStrides);

        var scores = g.Scores();
        g.Ops.Add(Matmul(keep, q, kT, scores));
        var scaled = g.Scores();
        g.Ops.Add(Pointwise(keep, PointwiseMode.Mul, DataType.Float, scores, g.ByValue(ScaleId), null, scaled));
        if (s.SoftCapped)
        {
            var cap = g.ByValue(SoftCapId);
            var divided = g.Scores();
            g.Ops.Add(Pointwise(keep, PointwiseMode.Div, DataType.Float, scaled, cap, null, divided));
            var tanh = g.Scores();
            g.Ops.Add(Pointwise(keep, PointwiseMode.TanhForward, DataType.Float, divided, null, null, tanh));
            scaled = g.Scores();
            g.Ops.Add(Pointwise(keep, PointwiseMode.Mul, DataType.Float, tanh, cap, null, scaled));
        }
        var masked = s.Causal ? g.Causal(scaled) : scaled;
        if (s.Windowed)
        {
            // Query row i keeps key j iff j + (W − Shift) > i: the band's left bound, in float as the frontend computes it.
            var row = g.Scores(DataType.Int32);
            g.Ops.Add(Pointwise(keep, PointwiseMode.GenerateIndex, DataType.Float, masked, null, null, row, axis: 2));
            var col = g.Scores(DataType.Int32);
            g.Ops.Add(Pointwise(keep, PointwiseMode.GenerateIndex, DataType.Float, masked, null, null, col, axis: 3));
            var shifted = g.Scores();
            g.Ops.Add(Pointwise(keep, PointwiseMode.Add, DataType.Float, col, g.ByValue(LeftBoundId), null, shifted));
            var inWindow = g.Scores(DataType.Boolean);
            g.Ops.Add(Pointwise(keep, PointwiseMode.CompareGreaterThan, DataType.Boolean, shifted, row, null, inWindow));
            var windowed = g.Scores();
            g.Ops.Add(Pointwise(keep, PointwiseMode.BinarySelect, DataType.Float, masked, g.ByValue(WindowMaskValueId), inWindow, windowed));
            masked = windowed;
        }

        // The probabilities enter the second GEMM in the input type, as the frontend declares them.
        var probabilities = g.Softmax(masked, stats, DataType.BFloat16);
        g.Ops.Add(Matmul(keep, probabilities, v, o));
        return g.Graph();
    }

    /// <summary>
    /// The engine configuration of this heuristics mode that finalizes into a plan after <paramref name="skip"/> others
    /// did (counted down): its workspace bytes, or null with the number that finalized.
    /// </summary>
    private static unsafe long? TryPlan(nint handle, CudnnDescriptor graph, HeuristicsMode mode, List<CudnnDescriptor> keep, ref int skip,
        out CudnnDescriptor? plan, out int finalized)
    {
        plan = null;
        finalized = 0;
        using var heuristics = new CudnnDescriptor(DescriptorType.EngineHeuristics);
        heuristics.Set(AttributeName.HeuristicsOperationGraph, graph).Set(AttributeName.HeuristicsMode, mode);
        if (heuristics.TryComplete() != StatusSuccess) return null;
        Check(cudnnBackendGetAttribute(heuristics.Handle, AttributeName.HeuristicsResults, AttributeType.BackendDescriptor, 0, out long count, null),
            "counting the engine configurations of the SDPA heuristics");
        if (count == 0) return null;
        // cuDNN fills engine-configuration descriptors the caller created.
        var configs = new CudnnDescriptor[count];
        var handles = new nint[count];
        for (int i = 0; i < count; i++) handles[i] = (configs[i] = new CudnnDescriptor(DescriptorType.EngineConfig)).Handle;
        try
        {
            long returned;
            fixed (nint* p = handles)
                Check(cudnnBackendGetAttribute(heuristics.Handle, AttributeName.HeuristicsResults, AttributeType.BackendDescriptor, count, out returned, p),
                    "reading the engine configurations of the SDPA heuristics");
            for (int i = 0; i < returned; i++)
            {
                var candidate = Keep(keep, new CudnnDescriptor(DescriptorType.ExecutionPlan));
                candidate.SetHandle(AttributeName.ExecutionPlanHandle, handle).Set(AttributeName.ExecutionPlanEngineConfig, configs[i]);
                bool ok = candidate.TryComplete() == StatusSuccess;
                if (ok && skip == 0)
                {
                    plan = candidate;
                    keep.Add(configs[i]);
                    configs[i] = null!;
                    return plan.GetInt64(AttributeName.ExecutionPlanWorkspaceSize);
                }
                if (ok)
                {
                    skip--;
                    finalized++;
                }
                keep.Remove(candidate);
                candidate.Dispose();
            }
            return null;
        }
        finally
        {
            foreach (var c in configs) c?.Dispose();
        }
    }

    internal static CudnnDescriptor Matmul(List<CudnnDescriptor> keep, CudnnDescriptor a, CudnnDescriptor b, CudnnDescriptor c)
    {
        var matmul = Keep(keep, new CudnnDescriptor(DescriptorType.Matmul)).Set(AttributeName.MatmulComputeType, DataType.Float).Complete();
        return Keep(keep, new CudnnDescriptor(DescriptorType.OperationMatmul))
            .Set(AttributeName.OperationMatmulA, a)
            .Set(AttributeName.OperationMatmulB, b)
            .Set(AttributeName.OperationMatmulC, c)
            .Set(AttributeName.OperationMatmulDescriptor, matmul)
            .Complete();
    }

    internal static CudnnDescriptor Pointwise(List<CudnnDescriptor> keep, PointwiseMode mode, DataType precision,
        CudnnDescriptor x, CudnnDescriptor? b, CudnnDescriptor? t, CudnnDescriptor y, long axis = -1)
    {
        var pw = Keep(keep, new CudnnDescriptor(DescriptorType.Pointwise))
            .Set(AttributeName.PointwiseMode, mode)
            .Set(AttributeName.PointwiseMathPrecision, precision);
        if (axis >= 0) pw.Set(AttributeName.PointwiseAxis, axis);
        pw.Complete();
        var op = Keep(keep, new CudnnDescriptor(DescriptorType.OperationPointwise))
            .Set(AttributeName.OperationPointwiseDescriptor, pw)
            .Set(AttributeName.OperationPointwiseX, x);
        if (b is not null) op.Set(AttributeName.OperationPointwiseB, b);
        if (t is not null) op.Set(AttributeName.OperationPointwiseT, t);
        return op.Set(AttributeName.OperationPointwiseY, y).Complete();
    }

    internal static CudnnDescriptor Reduction(List<CudnnDescriptor> keep, ReductionOperator op, CudnnDescriptor x, CudnnDescriptor y)
    {
        var reduction = Keep(keep, new CudnnDescriptor(DescriptorType.Reduction))
            .Set(AttributeName.ReductionComputeType, DataType.Float)
            .Set(AttributeName.ReductionOperator, op)
            .Complete();
        return Keep(keep, new CudnnDescriptor(DescriptorType.OperationReduction))
            .Set(AttributeName.OperationReductionX, x)
            .Set(AttributeName.OperationReductionY, y)
            .Set(AttributeName.OperationReductionDescriptor, reduction)
            .Complete();
    }

    internal static CudnnDescriptor Keep(List<CudnnDescriptor> keep, CudnnDescriptor d)
    {
        keep.Add(d);
        return d;
    }
}
