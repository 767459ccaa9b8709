using LongCtx.Backends;
using LongCtx.Tensors;

namespace LongCtx.Cuda.Ops;

/// <summary>APB's KV compression on the GPU (<see cref="ICompressionOps"/>): the top rows per head and the keys' attention mass.</summary>
public sealed unsafe partial class CudaBackend
{
    /// <summary>Selected on the GPU (Kernels/top_rows.cu, a block per head): the same rows as the host's selection.</summary>
    public void TopRowsPerHead(Tensor scores, int count, Tensor rows)
    {
        var (s, r) = (C(scores), C(rows));
        int n = s.Rows, heads = s.Shape[1];
        Check(s.DType is DType.F32 or DType.BF16 && r.DType == DType.I32 && r.Rows == count && r.Shape[1] == heads && count > 0 && count <= n,
            $"TopRowsPerHead: {count} rows of scores {s} into {r}");
        _device.Launch(_device.Function("top_rows.cu", "top_rows"), ((uint)heads, 1), 1024, 0, s.Pointer, s.DType == DType.BF16 ? 1 : 0, r.Pointer, n, heads, count);
    }

    public void KeyAttentionMass(Tensor q, TokenLayout queries, Tensor k, TokenLayout keys, float scale, Tensor mass)
    {
        var qs = C(q);
        var ks = C(k);
        int tq = qs.Rows, tk = ks.Rows, heads = qs.Shape[1], d = qs.Shape[2], kvHeads = ks.Shape[1];
        Check(mass.Length == (long)tk * kvHeads && queries.Count == tq && keys.Count == tk, $"KeyAttentionMass: q {qs}, k {ks}, mass {mass}");
        Check(d % 16 == 0 && d <= 256 && ks.Pointer % 16 == 0, $"KeyAttentionMass: keys {ks} must be 16-byte aligned rows of a head dimension that is a multiple of 16 up to 256");
        if (tk == 0) return;
        // The flash kernel's LSE normalises each query row; a second pass sums exp(score − LSE) per key.
        using var output = Allocate(ActivationType, tq, heads, d);
        using var lse = Allocate(DType.F32, tq, heads);
        Attention(q, queries, k, k, keys, new AttentionRule(scale), output, lse);
        var ql = _layouts.Of(queries);
        var kl = _layouts.Of(keys);
        // Kernels/key_attention_mass.cu: a block of 128 threads per 64 keys of one KV head.
        _device.Launch(_device.Function("key_attention_mass.cu", "key_attention_mass"), ((uint)((tk + 63) / 64), (uint)kvHeads), 128, 0, qs.Pointer, ks.Pointer,
            ql.SeqIds.Pointer, ql.Positions.Pointer, kl.SeqIds.Pointer, kl.Positions.Pointer, C(lse).Pointer, C(mass).Pointer,
            tq, tk, heads, kvHeads, d, scale);
    }
}
