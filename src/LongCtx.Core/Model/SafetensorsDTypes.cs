using LongCtx.Tensors;

namespace LongCtx.Model;

/// <summary>The dtype names of the safetensors format for the element types this engine reads and writes.</summary>
internal static class SafetensorsDTypes
{
    public const string Supported = "BF16, F16, F32, I32, I64, F8_E4M3, U8";

    public static bool TryParse(string name, out DType dtype)
    {
        switch (name)
        {
            case "BF16": dtype = DType.BF16; return true;
            case "F16": dtype = DType.F16; return true;
            case "F32": dtype = DType.F32; return true;
            case "I32": dtype = DType.I32; return true;
            case "I64": dtype = DType.I64; return true;
            case "F8_E4M3": dtype = DType.F8E4M3; return true;
            case "U8": dtype = DType.U8; return true;
            default: dtype = default; return false;
        }
    }

    public static string Name(DType dtype) => dtype switch
    {
        DType.BF16 => "BF16",
        DType.F16 => "F16",
        DType.F32 => "F32",
        DType.I32 => "I32",
        DType.I64 => "I64",
        DType.F8E4M3 => "F8_E4M3",
        DType.U8 => "U8",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };
}
