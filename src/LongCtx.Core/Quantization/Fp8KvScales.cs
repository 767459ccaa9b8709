namespace LongCtx.Quantization;

/// <summary>
/// An FP8 KV cache's per-tensor scales, one pair per layer: keys (after RoPE) and values are stored as
/// e4m3(f32(x / scale)) and read back as code · scale. The checkpoint's self_attn.k_scale / v_scale, or 1.
/// </summary>
public sealed record Fp8KvScales(float[] Keys, float[] Values)
{
    public static Fp8KvScales Ones(int layers) => new(Enumerable.Repeat(1f, layers).ToArray(), Enumerable.Repeat(1f, layers).ToArray());

    /// <summary>Whether every scale is 1 (no checkpoint scales), for reports.</summary>
    public bool AllOnes => Keys.All(s => s == 1f) && Values.All(s => s == 1f);
}
