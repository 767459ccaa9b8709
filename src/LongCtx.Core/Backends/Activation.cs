namespace LongCtx.Backends;

/// <summary>The activation of a gated MLP's gate: down(act(gate(x)) · up(x)).</summary>
public enum Activation
{
    /// <summary>silu(x) = x·σ(x): Llama, Mistral, Qwen (SwiGLU).</summary>
    Silu,
    /// <summary>GELU with the tanh approximation (transformers' gelu_pytorch_tanh): Gemma 2 and 3.</summary>
    GeluTanh,
}
