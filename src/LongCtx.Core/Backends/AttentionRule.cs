namespace LongCtx.Backends;

/// <summary>
/// How one layer turns query-key products into attention weights, on top of the mask every layout gives (same
/// sequence, key position ≤ query position): the products are multiplied by <see cref="Scale"/>, soft-capped to
/// <c>SoftCap · tanh(s / SoftCap)</c> when <see cref="SoftCap"/> is set (Gemma 2), and a key is visible only while
/// <c>pos(query) − Window &lt; pos(key)</c> when <see cref="Window"/> is set (sliding-window layers: a query sees the
/// last Window keys, itself included — transformers' <c>sliding_window</c>).
/// </summary>
public readonly record struct AttentionRule(float Scale, int? Window = null, float? SoftCap = null)
{
    /// <summary>The plain rule of a head dimension: scale 1/√d, every earlier key visible, no cap.</summary>
    public static AttentionRule ForHeadDim(int headDim) => new(1f / MathF.Sqrt(headDim));

    /// <summary>Whether a key at <paramref name="keyPosition"/> is visible to a query at <paramref name="queryPosition"/> of the same sequence.</summary>
    public bool Sees(int queryPosition, int keyPosition) =>
        keyPosition <= queryPosition && (Window is not int w || queryPosition - keyPosition < w);

    public override string ToString() =>
        $"scale {Scale}{(Window is int w ? $", window {w}" : "")}{(SoftCap is float c ? $", soft cap {c}" : "")}";
}
