using LongCtx.Tensors;

namespace LongCtx.Backends.Cpu;

/// <summary>Rows of a weight kept in its checkpoint format, as float32 (<see cref="FloatRows"/>).</summary>
internal static unsafe class WeightRows
{
    /// <summary>Widens destination.Length elements starting at element <paramref name="offset"/> of t into destination.</summary>
    public static void Read(CpuTensor t, long offset, Span<float> destination) => FloatRows.Read(t.DType, t.Data, offset, destination);

    /// <summary>
    /// Row view for F32 tensors without copying; widened into scratch otherwise.
    /// </summary>
    public static ReadOnlySpan<float> Row(CpuTensor t, int row, Span<float> scratch)
    {
        int n = t.RowLength;
        if (t.DType == DType.F32) return new ReadOnlySpan<float>((float*)t.Data + (long)row * n, n);
        Read(t, (long)row * n, scratch[..n]);
        return scratch[..n];
    }
}
