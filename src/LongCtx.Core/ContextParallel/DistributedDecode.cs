using LongCtx.Tensors;

namespace LongCtx.ContextParallel;

/// <summary>
/// Decode on the distributed KV cache (the paper's §3.5): every rank runs the new tokens' queries — the
/// same rows on every rank — against the KV it holds, then the partial outputs and LSEs are all-gathered
/// (one grouped operation) and merged in one pass, so every rank ends with the same exact output. The new tokens' own KV is
/// stored only on the rank the step assigns (round-robin), so caches grow evenly. Each sequence's queries
/// read its cache where it is (<see cref="LocalKv.AttendInPlace"/>): a batch of long caches is not copied
/// into one block every layer.
/// </summary>
public sealed class DistributedDecode : IAttentionStrategy
{
    public string Name => "decode";

    public Tensor Attend(AttentionLayer layer, Tensor q, Tensor k, Tensor v)
    {
        var b = layer.Backend;
        int n = layer.Ranks;
        LocalKv.Store(layer, k, v);
        // A rank whose keys no query can see still contributes: zeros with LSE −inf, which the merge ignores.
        // Attention writes every row (those zeros too) and the gathers and copies below fill what they write into,
        // so nothing here needs a zero fill (on a GPU, two memsets a layer of a decode step saved).
        var output = b.Scratch(b.ActivationType, q.Rows, layer.Heads, layer.HeadDim);
        using var lse = b.Scratch(DType.F32, q.Rows, layer.Heads);
        LocalKv.AttendInPlace(layer, q, output, lse);
        if (n == 1) return output;

        using var allOut = b.Scratch(b.ActivationType, n * q.Rows, layer.Heads, layer.HeadDim);
        using var allLse = b.Scratch(DType.F32, n * q.Rows, layer.Heads);
        layer.Comm.AllGatherEach([output, lse], [allOut, allLse]);
        output.Dispose();
        // Every rank merges the same gathered parts in the same order, so all ranks hold bit-identical results.
        var result = b.Scratch(b.ActivationType, q.Rows, layer.Heads, layer.HeadDim);
        b.MergeAttentionParts(allOut, allLse, result);
        return result;
    }
}
