namespace LongCtx.Tensors;

/// <summary>
/// Element types a tensor can hold. Compute is F32 on the CPU backend; weights may be stored as BF16/F16, or as
/// F8E4M3 codes with their scales (FP8 checkpoints), as may the KV cache. U8: raw bytes (e.g. e4m3 codes in fixtures).
/// </summary>
public enum DType { F32, BF16, F16, I32, I64, F8E4M3, U8 }

public static class DTypeInfo
{
    public static int SizeOf(this DType t) => t switch
    {
        DType.F32 or DType.I32 => 4,
        DType.BF16 or DType.F16 => 2,
        DType.I64 => 8,
        DType.F8E4M3 or DType.U8 => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };
}
