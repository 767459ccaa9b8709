namespace LongCtx.Cuda.Runtime;

/// <summary>Launch arithmetic the ops and the attention paths share.</summary>
internal static class Launches
{
    public static int CeilDiv(int a, int b) => (a + b - 1) / b;

    /// <summary>A 256-thread grid over n elements, capped where a grid-stride loop takes the rest.</summary>
    public static (uint, uint) Grid(long n) => ((uint)Math.Min((n + 255) / 256, 65535L * 16), 1);

    /// <summary>
    /// Whether a _vec8 kernel may take the work: it moves 8 bf16 per 16-byte access, so the length it walks
    /// must be whole groups of 8 and every pointer on a 16-byte boundary (a row view may start anywhere).
    /// </summary>
    public static bool Vectorisable(long length, params ReadOnlySpan<nint> pointers)
    {
        if (length % 8 != 0) return false;
        foreach (var p in pointers)
            if (p % 16 != 0) return false;
        return true;
    }
}
