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

    /// <summary>
    /// An F8E4M3 tensor's dequantisation scale: element = code · Scale (the FP8 KV cache's k_scale or v_scale). Set by
    /// whoever allocates it, inherited by its views; 1 for every other tensor.
    /// </summary>
    public float Scale { get; set; } = 1f;

    /// <summary>A view of rows [start, start+count) sharing this tensor's storage.</summary>
    public abstract Tensor SliceRows(int start, int count);

    /// <summary>The same storage seen with another shape of the same element count.</summary>
    public abstract Tensor View(params int[] shape);

    /// <summary>A view made by <see cref="SliceRows"/> or <see cref="View"/>, given this tensor's <see cref="Scale"/>.</summary>
    protected T Inherit<T>(T view) where T : Tensor
    {
        view.Scale = Scale;
        return view;
    }

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
