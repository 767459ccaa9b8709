using static LongCtx.Cuda.Attention.SdpaForwardGraph;
using static LongCtx.Cuda.Native.Cudnn;

namespace LongCtx.Cuda.Attention;

/// <summary>
/// What the bf16 and the FP8 SDPA graphs (<see cref="SdpaForwardGraph"/>, <see cref="SdpaFp8Graph"/>) are built of: tensor
/// descriptors kept alive with the plan, the operations in graph order, the causal mask and the softmax with its stats,
/// each spelled as cudnn-frontend spells it.
/// </summary>
internal sealed class SdpaGraphBuilder(nint handle, SdpaShape shape, List<CudnnDescriptor> keep)
{
    public static readonly long[] ScalarDims = [1, 1, 1, 1];
    private readonly long[] _scoreDims = [1, shape.QueryHeads, shape.QueryRows, shape.KeyRows];
    private readonly long[] _scoreStrides = [(long)shape.QueryHeads * shape.QueryRows * shape.KeyRows, (long)shape.QueryRows * shape.KeyRows, shape.KeyRows, 1];
    private long _virtualId = 100;

    public List<CudnnDescriptor> Keep => keep;
    public List<CudnnDescriptor> Ops { get; } = [];

    /// <summary>Stats' layout: packed [1, H, S, 1].</summary>
    public long[] RowDims { get; } = [1, shape.QueryHeads, shape.QueryRows, 1];
    public long[] RowStrides { get; } = [(long)shape.QueryHeads * shape.QueryRows, shape.QueryRows, 1, 1];

    public CudnnDescriptor Tensor(long uid, DataType type, long[] dims, long[] strides, bool isVirtual = false, bool byValue = false) =>
        SdpaForwardGraph.Keep(keep, new CudnnDescriptor(DescriptorType.Tensor))
            .Set(AttributeName.TensorDataType, type)
            .Set(AttributeName.TensorDimensions, dims)
            .Set(AttributeName.TensorStrides, strides)
            .Set(AttributeName.TensorUniqueId, uid)
            .Set(AttributeName.TensorByteAlignment, 16L)
            .Set(AttributeName.TensorIsVirtual, isVirtual)
            .Set(AttributeName.TensorIsByValue, byValue)
            .Complete();

    /// <summary>An intermediate of the given shape.</summary>
    public CudnnDescriptor Virtual(DataType type, long[] dims, long[] strides) => Tensor(_virtualId++, type, dims, strides, isVirtual: true);

    /// <summary>An intermediate of the scores' shape [1, H, Sq, Skv].</summary>
    public CudnnDescriptor Scores(DataType type = DataType.Float) => Virtual(type, _scoreDims, _scoreStrides);

    /// <summary>An intermediate of one float per query row.</summary>
    public CudnnDescriptor PerRow() => Virtual(DataType.Float, RowDims, RowStrides);

    /// <summary>A scalar passed by value at execution.</summary>
    public CudnnDescriptor ByValue(long uid, DataType type = DataType.Float) => Tensor(uid, type, ScalarDims, ScalarDims, byValue: true);

    /// <summary>
    /// Bottom-right causal alignment: query row i keeps key j iff i + (Skv − Sq) ≥ j, the others get the mask value
    /// (<see cref="MaskValueId"/>). With Sq == Skv the shift is left out, which is the plain causal pattern.
    /// </summary>
    public CudnnDescriptor Causal(CudnnDescriptor scaled)
    {
        var row = Scores(DataType.Int32);
        Ops.Add(Pointwise(keep, PointwiseMode.GenerateIndex, DataType.Float, scaled, null, null, row, axis: 2));
        var col = Scores(DataType.Int32);
        Ops.Add(Pointwise(keep, PointwiseMode.GenerateIndex, DataType.Float, scaled, null, null, col, axis: 3));
        if (shape.QueryRows != shape.KeyRows)
        {
            var plusKeys = Scores(DataType.Int32);
            Ops.Add(Pointwise(keep, PointwiseMode.Add, DataType.Int32, row, ByValue(KeyRowsId, DataType.Int32), null, plusKeys));
            row = Scores(DataType.Int32);
            Ops.Add(Pointwise(keep, PointwiseMode.Sub, DataType.Int32, plusKeys, ByValue(QueryRowsId, DataType.Int32), null, row));
        }
        var keepMask = Scores(DataType.Boolean);
        Ops.Add(Pointwise(keep, PointwiseMode.CompareGreaterEqual, DataType.Boolean, row, col, null, keepMask));
        var masked = Scores();
        Ops.Add(Pointwise(keep, PointwiseMode.BinarySelect, DataType.Float, scaled, ByValue(MaskValueId), keepMask, masked));
        return masked;
    }

    /// <summary>
    /// The softmax of each row as MAX, SUB, EXP, SUM with Stats = max + log(sum) into <paramref name="stats"/>, then the
    /// probabilities exp / sum (DIV) in <paramref name="probabilities"/>' type.
    /// </summary>
    public CudnnDescriptor Softmax(CudnnDescriptor masked, CudnnDescriptor stats, DataType probabilities)
    {
        var max = PerRow();
        Ops.Add(Reduction(keep, ReductionOperator.Max, masked, max));
        var centered = Scores();
        Ops.Add(Pointwise(keep, PointwiseMode.Sub, DataType.Float, masked, max, null, centered));
        var exp = Scores();
        Ops.Add(Pointwise(keep, PointwiseMode.Exp, DataType.Float, centered, null, null, exp));
        var sum = PerRow();
        Ops.Add(Reduction(keep, ReductionOperator.Add, exp, sum));
        var logSum = PerRow();
        Ops.Add(Pointwise(keep, PointwiseMode.Log, DataType.Float, sum, null, null, logSum));
        Ops.Add(Pointwise(keep, PointwiseMode.Add, DataType.Float, max, logSum, null, stats));
        var p = Scores(probabilities);
        Ops.Add(Pointwise(keep, PointwiseMode.Div, DataType.Float, exp, sum, null, p));
        return p;
    }

    /// <summary>The operation graph of <see cref="Ops"/>.</summary>
    public CudnnDescriptor Graph() =>
        SdpaForwardGraph.Keep(keep, new CudnnDescriptor(DescriptorType.OperationGraph))
            .SetHandle(AttributeName.OperationGraphHandle, handle)
            .Set(AttributeName.OperationGraphOps, Ops.ToArray())
            .Complete();
}
