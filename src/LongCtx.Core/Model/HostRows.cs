using LongCtx.Tensors;

namespace LongCtx.Model;

/// <summary>Float32 values of a host tensor held as BF16, F16 or F32.</summary>
internal static unsafe class HostRows
{
    public static void Read(HostTensor t, long offset, Span<float> destination)
    {
        switch (t.DType)
        {
            case DType.F32:
                new ReadOnlySpan<float>((float*)t.Data + offset, destination.Length).CopyTo(destination);
                break;
            case DType.F16:
                System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>((Half*)t.Data + offset, destination.Length), destination);
                break;
            case DType.BF16:
                var source = new ReadOnlySpan<ushort>((ushort*)t.Data + offset, destination.Length);
                for (int i = 0; i < destination.Length; i++) destination[i] = BitConverter.Int32BitsToSingle(source[i] << 16);
                break;
            default:
                throw new InvalidOperationException($"{t} is not a float tensor");
        }
    }
}
