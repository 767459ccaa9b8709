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

    /// <summary>The order of the eight device floats of a call's scalar buffer (the ids above, from <see cref="DescaleQId"/>).</summary>
    public static class Scalars
    {
        public const int DescaleQ = 0, DescaleK = 1, DescaleV = 2, DescaleS = 3, ScaleS = 4, ScaleO = 5, AmaxS = 6, AmaxO = 7, Count = 8;
    }

    public static CudnnDescriptor Build(nint handle, SdpaShape s, List<CudnnDescriptor> keep)
    {
        if (s.Causal && s.QueryRows != s.KeyRows)
            throw new LongCtxException("the FP8 engines on Hopper take causal blocks with as many keys as queries only");
        long h = s.QueryHeads, hk = s.KvHeads, d = s.HeadDim, sq = s.QueryRows, skv = s.KeyRows;
        long virtualId = 100;
        CudnnDescriptor Tensor(long uid, DataType type, long[] dims, long[] strides, bool isVirtual = false, bool byValue = false) =>
            Keep(keep, new CudnnDescriptor(DescriptorType.Tensor))
                .Set(AttributeName.TensorDataType, type)
                .Set(AttributeName.TensorDimensions, dims)
                .Set(AttributeName.TensorStrides, strides)
                .Set(AttributeName.TensorUniqueId, uid)
                .Set(AttributeName.TensorByteAlignment, 16L)
                .Set(AttributeName.TensorIsVirtual, isVirtual)
                .Set(AttributeName.TensorIsByValue, byValue)
                .Complete();
        long[] scoreDims = [1, h, sq, skv], scoreStrides = [h * sq * skv, sq * skv, skv, 1];
        long[] rowDims = [1, h, sq, 1], rowStrides = [h * sq, sq, 1, 1];
        long[] scalar = [1, 1, 1, 1];
        long[] outDims = [1, h, sq, d], outStrides = [sq * h * d, d, h * d, 1];
        CudnnDescriptor Scores(DataType type = DataType.Float) => Tensor(virtualId++, type, scoreDims, scoreStrides, isVirtual: true);
        CudnnDescriptor PerRow() => Tensor(virtualId++, DataType.Float, rowDims, rowStrides, isVirtual: true);
        CudnnDescriptor Device(long uid) => Tensor(uid, DataType.Float, scalar, scalar);

        var q = Tensor(QId, DataType.Fp8E4M3, outDims, outStrides);
        var kT = Tensor(KId, DataType.Fp8E4M3, [1, hk, d, skv], [skv * hk * d, d, 1, hk * d]);
        var v = Tensor(VId, DataType.Fp8E4M3, [1, hk, skv, d], [skv * hk * d, d, hk * d, 1]);
        var o = Tensor(OId, DataType.Fp8E4M3, outDims, outStrides);
        var stats = Tensor(StatsId, DataType.Float, rowDims, rowStrides);
        var scale = Tensor(ScaleId, DataType.Float, scalar, scalar, byValue: true);

        var ops = new List<CudnnDescriptor>();
        CudnnDescriptor Mul(CudnnDescriptor x, CudnnDescriptor by)
        {
            var y = Scores();
            ops.Add(Pointwise(keep, PointwiseMode.Mul, DataType.Float, x, by, null, y));
            return y;
        }

        var scores = Scores();
        ops.Add(Matmul(keep, q, kT, scores));
        var scaled = Mul(Mul(Mul(scores, scale), Device(DescaleQId)), Device(DescaleKId));
        var masked = scaled;
        if (s.Causal)
        {
            var row = Scores(DataType.Int32);
            ops.Add(Pointwise(keep, PointwiseMode.GenerateIndex, DataType.Float, scaled, null, null, row, axis: 2));
            var col = Scores(DataType.Int32);
            ops.Add(Pointwise(keep, PointwiseMode.GenerateIndex, DataType.Float, scaled, null, null, col, axis: 3));
            var keepMask = Scores(DataType.Boolean);
            ops.Add(Pointwise(keep, PointwiseMode.CompareGreaterEqual, DataType.Boolean, row, col, null, keepMask));
            masked = Scores();
            ops.Add(Pointwise(keep, PointwiseMode.BinarySelect, DataType.Float, scaled, Tensor(MaskValueId, DataType.Float, scalar, scalar, byValue: true), keepMask, masked));
        }

        var max = PerRow();
        ops.Add(Reduction(keep, ReductionOperator.Max, masked, max));
        var centered = Scores();
        ops.Add(Pointwise(keep, PointwiseMode.Sub, DataType.Float, masked, max, null, centered));
        var exp = Scores();
        ops.Add(Pointwise(keep, PointwiseMode.Exp, DataType.Float, centered, null, null, exp));
        var sum = PerRow();
        ops.Add(Reduction(keep, ReductionOperator.Add, exp, sum));
        var logSum = PerRow();
        ops.Add(Pointwise(keep, PointwiseMode.Log, DataType.Float, sum, null, null, logSum));
        ops.Add(Pointwise(keep, PointwiseMode.Add, DataType.Float, max, logSum, null, stats));
        var probabilities = Scores();
        ops.Add(Pointwise(keep, PointwiseMode.Div, DataType.Float, exp, sum, null, probabilities));
        ops.Add(Reduction(keep, ReductionOperator.Amax, probabilities, Device(AmaxSId)));
        var p8 = Scores(DataType.Fp8E4M3);
        ops.Add(Pointwise(keep, PointwiseMode.Mul, DataType.Float, probabilities, Device(ScaleSId), null, p8));

        var pv = Tensor(virtualId++, DataType.Float, outDims, outStrides, isVirtual: true);
        ops.Add(Matmul(keep, p8, v, pv));
        var descaledS = Tensor(virtualId++, DataType.Float, outDims, outStrides, isVirtual: true);
        ops.Add(Pointwise(keep, PointwiseMode.Mul, DataType.Float, pv, Device(DescaleSId), null, descaledS));
        var descaledV = Tensor(virtualId++, DataType.Float, outDims, outStrides, isVirtual: true);
        ops.Add(Pointwise(keep, PointwiseMode.Mul, DataType.Float, descaledS, Device(DescaleVId), null, descaledV));
        ops.Add(Pointwise(keep, PointwiseMode.Mul, DataType.Float, descaledV, Device(ScaleOId), null, o));
        ops.Add(Reduction(keep, ReductionOperator.Amax, descaledV, Device(AmaxOId)));

        return Keep(keep, new CudnnDescriptor(DescriptorType.OperationGraph))
            .SetHandle(AttributeName.OperationGraphHandle, handle)
            .Set(AttributeName.OperationGraphOps, ops.ToArray())
            .Complete();
    }
}
