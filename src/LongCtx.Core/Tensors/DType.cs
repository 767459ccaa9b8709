namespace LongCtx.Tensors;

/// <summary>Element types a tensor can hold. Compute is F32 on the CPU backend; weights may be stored as BF16/F16.</summary>
public enum DType { F32, BF16, F16, I32, I64 }

public static class DTypeInfo
{
    public static int SizeOf(this DType t) => t switch
    {
        DType.F32 or DType.I32 => 4,
        DType.BF16 or DType.F16 => 2,
        DType.I64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };
}
