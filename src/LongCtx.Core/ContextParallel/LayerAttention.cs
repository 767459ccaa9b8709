using LongCtx.Tensors;

namespace LongCtx.ContextParallel;

/// <summary>
/// A model's attention, layer by layer: full-attention layers run one strategy (the ring of the pass-KV / pass-Q
/// choice), sliding-window layers another (in a prefill, <see cref="HaloAttention"/>), and after every sliding-window
/// layer each cache drops the rows no later query sees (<see cref="LocalKv.Forget"/>). Reports the full layers' name.
/// </summary>
public sealed class LayerAttention(IAttentionStrategy full, IAttentionStrategy windowed) : IAttentionStrategy
{
    /// <summary>One strategy for every layer (decode, Star Attention, APB), windows still kept to their last W rows.</summary>
    public LayerAttention(IAttentionStrategy all) : this(all, all) { }

    public string Name => full.Name;

    public Tensor Attend(AttentionLayer layer, Tensor q, Tensor k, Tensor v)
    {
        if (layer.Window is null) return full.Attend(layer, q, k, v);
        var output = windowed.Attend(layer, q, k, v);
        LocalKv.Forget(layer);
        return output;
    }
}
