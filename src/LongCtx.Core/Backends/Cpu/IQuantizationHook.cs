namespace LongCtx.Backends.Cpu;

/// <summary>
/// Sees, and may replace, every FP8 quantisation the CPU backend makes: how a test compares the engine's codes with a
/// reference's and then runs on the reference's (bench/reference/FP8.md, "activation codes"). Ranks call it from their
/// own threads at once.
/// </summary>
public interface IQuantizationHook
{
    /// <summary>
    /// The input of the FP8 linear layer whose weight is <paramref name="weight"/>: x [rows, k] as the backend holds it,
    /// the codes [rows, k] and scales (per row, per row and group of 128, or the one static scale) it made.
    /// </summary>
    void Activations(string weight, ReadOnlySpan<float> x, int rows, Span<byte> codes, Span<float> scales);

    /// <summary>Rows of keys or values (all KV heads of a token a row) quantised into the FP8 cache with its static scale.</summary>
    void KvCache(ReadOnlySpan<float> x, int rows, float scale, Span<byte> codes);
}
