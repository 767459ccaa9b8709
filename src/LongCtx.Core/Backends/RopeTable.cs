namespace LongCtx.Backends;

/// <summary>
/// Rotary embedding as Hugging Face applies it (rotate_half: dimension i pairs with i + D/2):
/// angle(pos, i) = pos * InvFreq[i]; cos and sin are multiplied by AttentionScale (1 except for YaRN).
/// The RoPE type (default, linear, llama3, yarn, ...) only changes how InvFreq and AttentionScale are made.
/// </summary>
public sealed record RopeTable(float[] InvFreq, float AttentionScale = 1f)
{
    public int HeadDim => InvFreq.Length * 2;
}
