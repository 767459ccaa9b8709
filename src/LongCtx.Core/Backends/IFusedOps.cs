using LongCtx.Tensors;

namespace LongCtx.Backends;

/// <summary>
/// Fused or batched forms of <see cref="IBackend"/>'s primitives that a backend may run as fewer launches (the GPU does,
/// for decode-sized inputs: a decode step is hundreds of short kernels). Each gives the bits of its composition from the
/// primitives, which <see cref="BackendOps"/> runs for a backend that does not implement this.
/// </summary>
public interface IFusedOps
{
    /// <summary>Several <see cref="IBackend.Copy"/>s (a layer's new K and V rows into their caches).</summary>
    void CopyEach(params ReadOnlySpan<(Tensor Source, Tensor Destination)> copies);

    /// <summary>Y_i = x · W_iᵀ (+ bias_i) for several projections of the same x (q, k and v).</summary>
    void LinearEach(Tensor x, params ReadOnlySpan<(Tensor Weight, Tensor? Bias, Tensor Y)> projections);

    /// <summary>
    /// h = RmsNorm(x), then <see cref="LinearEach"/> of h. A backend that folds the norm into the projections may leave h
    /// unwritten: the caller may only use it as working space afterwards.
    /// </summary>
    void NormedLinearEach(Tensor x, Tensor normWeight, float eps, Tensor h, params ReadOnlySpan<(Tensor Weight, Tensor? Bias, Tensor Y)> projections);

    /// <summary>
    /// A layer's attention inputs: q [T, NH·D], k [T, NKV·D] and v from <see cref="NormedLinearEach"/>, then the rotary
    /// embedding of q and k at the layout's positions.
    /// </summary>
    void NormedRotatedQkv(Tensor x, Tensor normWeight, float eps, Tensor h, (Tensor Weight, Tensor? Bias, Tensor Y) q,
        (Tensor Weight, Tensor? Bias, Tensor Y) k, (Tensor Weight, Tensor? Bias, Tensor Y) v, TokenLayout layout, RopeTable rope);

    /// <summary>h = RmsNorm(x), then <see cref="SwiGluLinear"/> of h, as <see cref="NormedLinearEach"/>.</summary>
    void NormedSwiGluLinear(Tensor x, Tensor normWeight, float eps, Tensor h, Tensor gateWeight, Tensor upWeight, Tensor y, Tensor up);

    /// <summary>y = silu(x · Gateᵀ) * (x · Upᵀ), the MLP's first half; <paramref name="up"/> [T, N] is working space, left undefined.</summary>
    void SwiGluLinear(Tensor x, Tensor gateWeight, Tensor upWeight, Tensor y, Tensor up);

    /// <summary><see cref="IBackend.Rope"/> of a layer's q [T, NH, D] and k [T, NKV, D], the same rows.</summary>
    void Rope(Tensor q, Tensor k, TokenLayout layout, RopeTable rope);

    /// <summary>
    /// Attention of row ranges of q, each against its own keys and values (a decode step's sequences, each against its
    /// cache where it is): <see cref="IBackend.Attention"/> of each part into the same rows of output and lse. Rows no
    /// part names are left alone.
    /// </summary>
    void AttentionEach(Tensor q, Tensor output, Tensor lse, AttentionRule rule, params ReadOnlySpan<AttentionPart> parts);
}

/// <summary>One part of <see cref="IFusedOps.AttentionEach"/>: query rows [QueryRow, QueryRow + Queries.Count) against K and V [Keys.Count, NKV, D].</summary>
public readonly record struct AttentionPart(int QueryRow, TokenLayout Queries, Tensor K, Tensor V, TokenLayout Keys);
