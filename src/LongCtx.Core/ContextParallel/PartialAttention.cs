using LongCtx.Backends;
using LongCtx.Tensors;

namespace LongCtx.ContextParallel;

/// <summary>
/// Attention output accumulated over key blocks by log-sum-exp merging. The first block is kept as is;
/// each further one is merged into it, so any number of blocks in any order gives the same result up to
/// float rounding.
/// </summary>
internal sealed class PartialAttention(IBackend backend, int rows, int heads, int headDim)
{
    private Tensor? _out, _lse;

    public void Add(Tensor output, Tensor lse)
    {
        if (_out is null)
        {
            _out = output;
            _lse = lse;
            return;
        }
        backend.MergeAttention(_out, _lse!, output, lse);
        output.Dispose();
        lse.Dispose();
    }

    /// <summary>The merged output; zeros if no block was visible (no query row is left without a key in causal prefill).</summary>
    public Tensor Result()
    {
        _lse?.Dispose();
        return _out ?? backend.Allocate(backend.ActivationType, rows, heads, headDim);
    }
}
