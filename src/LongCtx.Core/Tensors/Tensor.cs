namespace LongCtx.Tensors;

/// <summary>
/// A typed handle on storage that lives on one backend's device. Row-major; the first dimension is
/// "rows" (tokens for activations), everything after it is one row. Backends create and consume their
/// own tensor types; orchestration code only moves handles around.
/// </summary>
public abstract class Tensor : IDisposable
{
    protected Tensor(DType dtype, int[] shape)
    {
        if (shape.Length == 0) throw new ArgumentException("a tensor needs at least one dimension");
        DType = dtype;
        Shape = shape;
        long n = 1;
        foreach (var d in shape)
        {
            if (d < 0) throw new ArgumentException($"negative dimension in shape [{string.Join(", ", shape)}]");
            n *= d;
        }
        Length = n;
    }

    public DType DType { get; }
    public int[] Shape { get; }
    public long Length { get; }
    public int Rows => Shape[0];
    public int RowLength => Shape[0] == 0 ? (int)ShapeProductAfterFirst() : (int)(Length / Shape[0]);
    public long Bytes => Length * DType.SizeOf();

    /// <summary>A view of rows [start, start+count) sharing this tensor's storage.</summary>
    public abstract Tensor SliceRows(int start, int count);

    /// <summary>The same storage seen with another shape of the same element count.</summary>
    public abstract Tensor View(params int[] shape);

    protected void CheckView(int[] shape)
    {
        long n = 1;
        foreach (var d in shape) n *= d;
        if (n != Length) throw new ArgumentException($"cannot view {this} as [{string.Join(", ", shape)}]");
    }

    public abstract void Dispose();

    public override string ToString() => $"{DType}[{string.Join(", ", Shape)}]";

    private long ShapeProductAfterFirst()
    {
        long n = 1;
        for (int i = 1; i < Shape.Length; i++) n *= Shape[i];
        return n;
    }
}
