using static LongCtx.Cuda.Attention.SdpaForwardGraph;
using static LongCtx.Cuda.Native.Cudnn;

namespace LongCtx.Cuda.Attention;

/// <summary>
/// The FP8 SDPA forward graph cuDNN's FP8 flash-attention engines recognise on Hopper (cudnn-frontend's sdpa_fp8 node
/// lowers to it): Q, K, V e4m3 with per-tensor descales, O e4m3 with a scale, fp32 inside:
///
///   S = Q·Kᵀ → ×scale → ×descale_q → ×descale_k → [causal, top-left only on Hopper: GEN_INDEX, row ≥ col, BINARY_SELECT]
///   → softmax (MAX, SUB, EXP, SUM, DIV; Stats = max + log(sum)) → amax_s → P = S·scale_s (e4m3) → P·V
///   → ×descale_s → ×descale_v (amax_o) → ×scale_o → O (e4m3).
///
/// The scalars are device floats at the ids below, in one buffer (<see cref="Scalars"/>): with scale_s = 448 the
/// probabilities use e4m3's range, and with scale_o = 1 / descale_v the output's codes stay within it (|O| ≤ max |V|).
/// </summary>
internal static class SdpaFp8Graph
{
    public const long DescaleQId = 10, DescaleKId = 11, DescaleVId = 12, DescaleSId = 13, ScaleSId = 14, ScaleOId = 15, AmaxSId = 16, AmaxOId = 17;

    /// <summary>
    /// The order of the eight device floats of a call's scalar buffer (the ids above, from <see cref="DescaleQId"/>), each
    /// <see cref="Stride"/> bytes after the one before: the graph declares every tensor 16-byte aligned, and cuDNN rejects
    /// a variant pack pointer that is not (CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER).
    /// </summary>
    public static class Scalars
    {
        public const int DescaleQ = 0, DescaleK = 1, DescaleV = 2, DescaleS = 3, ScaleS = 4, ScaleO = 5, AmaxS = 6, AmaxO = 7, Count = 8;
        public const int Stride = 16, Bytes = Count * Stride;

        /// <summary>The address of scalar <paramref name="i"/> in the buffer at <paramref name="buffer"/>.</summary>
        public static nint At(nint buffer, int i) => buffer + i * Stride;
    }

    public static CudnnDescriptor Build(nint handle, SdpaShape s, List<CudnnDescriptor> keep)
    {
        if (s.Causal && s.QueryRows != s.KeyRows)
            throw new LongCtxException("the FP8 engines on Hopper take causal blocks with as many keys as queries only");
        long h = s.QueryHeads, hk = s.KvHeads, d = s.HeadDim, sq = s.QueryRows, skv = s.KeyRows;
        var g = new SdpaGraphBuilder(handle, s, keep);
        long[] outDims = [1, h, sq, d], outStrides = [sq * h * d, d, h * d, 1];
        CudnnDescriptor Device(long uid) => g.Tensor(uid, DataType.Float, SdpaGraphBuilder.ScalarDims, SdpaGraphBuilder.ScalarDims);
        CudnnDescriptor Output() => g.Virtual(DataType.Float, outDims, outStrides);

        var q = g.Tensor(QId, DataType.Fp8E4M3, outDims, outStrides);
        var kT = g.Tensor(KId, DataType.Fp8E4M3, [1, hk, d, skv], [skv * hk * d, d, 1, hk * d]);
        var v = g.Tensor(VId, DataType.Fp8E4M3, [1, hk, skv, d], [skv * hk * d, d, hk * d, 1]);
        var o = g.Tensor(OId, DataType.Fp8E4M3, outDims, outStrides);
        var stats = g.Tensor(StatsId, DataType.Float, g.RowDims, g.RowStrides);

        CudnnDescriptor Mul(CudnnDescriptor x, CudnnDescriptor by)
        {
            var y = g.Scores();
            g.Ops.Add(Pointwise(keep, PointwiseMode.Mul, DataType.Float, x, by, null, y));
            return y;
        }

        var scores = g.Scores();
        g.Ops.Add(Matmul(keep, q, kT, scores));
        var scaled = Mul(Mul(Mul(scores, g.ByValue(ScaleId)), Device(DescaleQId)), Device(DescaleKId));
        var masked = s.Causal ? g.Causal(scaled) : scaled;

        var probabilities = g.Softmax(masked, stats, DataType.Float);
        g.Ops.Add(Reduction(keep, ReductionOperator.Amax, probabilities, Device(AmaxSId)));
        var p8 = g.Scores(DataType.Fp8E4M3);
        g.Ops.Add(Pointwise(keep, PointwiseMode.Mul, DataType.Float, probabilities, Device(ScaleSId), null, p8));

        var pv = Output();
        g.Ops.Add(Matmul(keep, p8, v, pv));
        var descaledS = Output();
        g.Ops.Add(Pointwise(keep, PointwiseMode.Mul, DataType.Float, pv, Device(DescaleSId), null, descaledS));
        var descaledV = Output();
        g.Ops.Add(Pointwise(keep, PointwiseMode.Mul, DataType.Float, descaledS, Device(DescaleVId), null, descaledV));
        g.Ops.Add(Pointwise(keep, PointwiseMode.Mul, DataType.Float, descaledV, Device(ScaleOId), null, o));
        g.Ops.Add(Reduction(keep, ReductionOperator.Amax, descaledV, Device(AmaxOId)));
        return g.Graph();
    }
}
