using LongCtx.Tensors;

namespace LongCtx.Backends;

/// <summary>
/// The primitive operations the decoder families and the context-parallel strategies need. Activations
/// are F32 on the CPU backend (BF16 on GPUs); weights stay in the format the backend chose in
/// <see cref="LoadWeight"/>. Shapes: activations [T, features]; attention tensors [T, heads, headDim];
/// LSE [T, heads] in natural log, -inf for a query row that saw no key. What a backend may do better than these
/// (<see cref="IFusedOps"/>, <see cref="ISamplingOps"/>, <see cref="ICompressionOps"/>) callers reach through
/// <see cref="BackendOps"/>.
/// </summary>
public interface IBackend : IDisposable
{
    string Name { get; }
    /// <summary>The device it runs on, as a front end sees it.</summary>
    IDeviceInfo Info { get; }
    /// <summary>The element type of activations and attention tensors (F32 on CPU, BF16 on GPUs).</summary>
    DType ActivationType { get; }

    /// <summary>A zero-filled tensor.</summary>
    Tensor Allocate(DType dtype, params int[] shape);
    /// <summary>
    /// A tensor whose contents are undefined: the caller writes every element before reading it. Spares the
    /// fill <see cref="Allocate"/> pays for (on a GPU a memset as large as the tensor).
    /// </summary>
    Tensor Scratch(DType dtype, params int[] shape);
    /// <summary>Host to device. float maps to the backend's activation type, int to I32.</summary>
    Tensor Upload<T>(ReadOnlySpan<T> data, params int[] shape) where T : unmanaged;
    /// <summary>Device to host. Activations come back as float, I32 as int.</summary>
    void Download<T>(Tensor source, Span<T> destination) where T : unmanaged;
    /// <summary>Takes a host weight into the backend (the CPU backend may keep pointing at the mapping).</summary>
    Tensor LoadWeight(HostTensor weight);
    /// <summary>dst = src (same element count and type; either may be a row view).</summary>
    void Copy(Tensor source, Tensor destination);

    /// <summary>output[t, :] = table[ids[t], :] (ids I32 [T], table [V, H], output [T, H]).</summary>
    void Embedding(Tensor ids, Tensor table, Tensor output);
    /// <summary>y[T, N] = x[T, K] · W[N, K]ᵀ (+ bias[N]) — the nn.Linear layout.</summary>
    void Linear(Tensor x, Tensor weight, Tensor? bias, Tensor y);
    /// <summary>
    /// y[T, N] += x[T, K] · W[N, K]ᵀ: a projection added straight into the residual stream, without a
    /// [T, N] intermediate (on a GPU the GEMM's epilogue adds, rounding once).
    /// </summary>
    void LinearAccumulate(Tensor x, Tensor weight, Tensor y);
    /// <summary>
    /// y = x / rms(x) * (weightOffset + weight), per row (weightOffset 1: Gemma's norms, computed in float32 as transformers
    /// does). y may be x.
    /// </summary>
    void RmsNorm(Tensor x, Tensor weight, float eps, Tensor y, float weightOffset = 0f);
    /// <summary>accumulator += x.</summary>
    void Add(Tensor accumulator, Tensor x);
    /// <summary>In-place rotary embedding of x [T, heads, D] at the layout's positions.</summary>
    void Rope(Tensor x, TokenLayout layout, RopeTable rope);
    /// <summary>y = silu(gate) * up.</summary>
    void SwiGlu(Tensor gate, Tensor up, Tensor y);
    /// <summary>y = gelu_tanh(gate) * up, GELU with the tanh approximation (Gemma's MLP). y may be gate.</summary>
    void GeluTanhGlu(Tensor gate, Tensor up, Tensor y);
    /// <summary>x = cap · tanh(x / cap), in place (Gemma 2's final logits).</summary>
    void SoftCap(Tensor x, float cap);
    /// <summary>x = x · factor, in place (Gemma's embedding scale).</summary>
    void Scale(Tensor x, float factor);

    /// <summary>
    /// One attention block: q [Tq, NH, D] against k, v [Tk, NKV, D] (NH a multiple of NKV, grouped-query),
    /// mask from the layouts (same sequence and key position ≤ query position) and, with the rule's window, within
    /// the window; products scaled and soft-capped as the rule says. Writes output [Tq, NH, D] and lse [Tq, NH] (of
    /// the capped, scaled products); a query row that sees no key gets output 0 and lse -inf. Never builds Tq×Tk.
    /// </summary>
    void Attention(Tensor q, TokenLayout queries, Tensor k, Tensor v, TokenLayout keys, AttentionRule rule, Tensor output, Tensor lse);

    /// <summary>
    /// Merges a partial attention result into an accumulator by log-sum-exp:
    /// lse = logaddexp(lseAcc, lsePart); outAcc = outAcc·exp(lseAcc−lse) + outPart·exp(lsePart−lse).
    /// </summary>
    void MergeAttention(Tensor outputAccumulator, Tensor lseAccumulator, Tensor outputPart, Tensor lsePart);

    /// <summary>
    /// Merges N partial attention results at once: parts [N·rows, heads, d] and lses [N·rows, heads] hold part j in rows
    /// [j·rows, (j+1)·rows) (an all-gather's layout); output[i] = Σ_j exp(lse_j[i] − L[i])·part_j[i] with
    /// L = logsumexp_j lse_j, and 0 where every lse_j is −inf. One pass instead of N − 1 pairwise merges.
    /// </summary>
    void MergeAttentionParts(Tensor parts, Tensor lses, Tensor output);

    /// <summary>
    /// Per-head row gather (KV compression keeps different rows for each KV head):
    /// destination[i, h, :] = source[indices[i, h], h, :] (source [T, H, D], indices I32 [n, H], destination [n, H, D]).
    /// </summary>
    void GatherRows(Tensor source, Tensor indices, Tensor destination);
}
