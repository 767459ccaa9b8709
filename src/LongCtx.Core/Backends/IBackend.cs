using LongCtx.Approximate;
using LongCtx.Sampling;
using LongCtx.Tensors;
namespace LongCtx.Backends;

/// <summary>
/// The few operations a Llama-style transformer and the context-parallel strategies need. Activations
/// are F32 on the CPU backend (BF16 on GPUs); weights stay in the format the backend chose in
/// <see cref="LoadWeight"/>. Shapes: activations [T, features]; attention tensors [T, heads, headDim];
/// LSE [T, heads] in natural log, -inf for a query row that saw no key.
/// </summary>
public interface IBackend : IDisposable
{
    string Name { get; }
    /// <summary>The device it runs on, as a front end sees it.</summary>
    IDeviceInfo Info { get; }
    /// <summary>The element type of activations, attention tensors and the KV cache (F32 on CPU, BF16 on GPUs).</summary>
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

    /// <summary>
    /// Several <see cref="Copy"/>s (a layer's new K and V rows into its cache): one each, unless the backend does
    /// them at once (the GPU does small ones in one launch: two a layer in every decode step).
    /// </summary>
    void CopyEach(params ReadOnlySpan<(Tensor Source, Tensor Destination)> copies)
    {
        foreach (var (source, destination) in copies) Copy(source, destination);
    }

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
    /// Y_i = x · W_iᵀ (+ bias_i) for several projections of the same x (q, k and v): one <see cref="Linear"/> each,
    /// unless the backend runs them as one (the GPU does for decode-sized x: fewer launches a step).
    /// </summary>
    void LinearEach(Tensor x, params ReadOnlySpan<(Tensor Weight, Tensor? Bias, Tensor Y)> projections)
    {
        foreach (var (weight, bias, y) in projections) Linear(x, weight, bias, y);
    }

    /// <summary>
    /// h = RmsNorm(x) and then <see cref="LinearEach"/> of h (a layer's input norm and its q, k, v projections):
    /// the two, unless the backend fuses the norm into the projections (the GPU does for decode-sized x, and then
    /// leaves h unwritten: the caller may only use it as working space afterwards).
    /// </summary>
    void NormedLinearEach(Tensor x, Tensor normWeight, float eps, Tensor h, params ReadOnlySpan<(Tensor Weight, Tensor? Bias, Tensor Y)> projections)
    {
        RmsNorm(x, normWeight, eps, h);
        LinearEach(h, projections);
    }

    /// <summary>
    /// A layer's attention inputs: q [T, NH·D], k [T, NKV·D] and v from <see cref="NormedLinearEach"/>, then the
    /// rotary embedding of q and k at the layout's positions (<see cref="Rope(Tensor, Tensor, TokenLayout, RopeTable)"/>):
    /// the two, unless the backend rotates q and k inside the projections (the GPU does for decode-sized x, one
    /// launch fewer per layer, the same bits).
    /// </summary>
    void NormedRotatedQkv(Tensor x, Tensor normWeight, float eps, Tensor h, (Tensor Weight, Tensor? Bias, Tensor Y) q,
        (Tensor Weight, Tensor? Bias, Tensor Y) k, (Tensor Weight, Tensor? Bias, Tensor Y) v, TokenLayout layout, RopeTable rope)
    {
        NormedLinearEach(x, normWeight, eps, h, q, k, v);
        int d = rope.HeadDim;
        Rope(q.Y.View(q.Y.Rows, q.Y.RowLength / d, d), k.Y.View(k.Y.Rows, k.Y.RowLength / d, d), layout, rope);
    }

    /// <summary>h = RmsNorm(x) and then <see cref="SwiGluLinear"/> of h, as <see cref="NormedLinearEach"/>.</summary>
    void NormedSwiGluLinear(Tensor x, Tensor normWeight, float eps, Tensor h, Tensor gateWeight, Tensor upWeight, Tensor y, Tensor up)
    {
        RmsNorm(x, normWeight, eps, h);
        SwiGluLinear(h, gateWeight, upWeight, y, up);
    }

    /// <summary>
    /// y = silu(x · Gateᵀ) * (x · Upᵀ), the MLP's first half: two <see cref="Linear"/>s and <see cref="SwiGlu"/>,
    /// unless the backend fuses them (the GPU does for decode-sized x). <paramref name="up"/> [T, N] is working
    /// space, left undefined.
    /// </summary>
    void SwiGluLinear(Tensor x, Tensor gateWeight, Tensor upWeight, Tensor y, Tensor up)
    {
        Linear(x, gateWeight, null, y);
        Linear(x, upWeight, null, up);
        SwiGlu(y, up, y);
    }

    /// <summary>y = x / rms(x) * weight, per row.</summary>
    void RmsNorm(Tensor x, Tensor weight, float eps, Tensor y);
    /// <summary>accumulator += x.</summary>
    void Add(Tensor accumulator, Tensor x);
    /// <summary>In-place rotary embedding of x [T, heads, D] at the layout's positions.</summary>
    void Rope(Tensor x, TokenLayout layout, RopeTable rope);

    /// <summary>
    /// <see cref="Rope(Tensor, TokenLayout, RopeTable)"/> of a layer's q [T, NH, D] and k [T, NKV, D], the same rows: one
    /// call each, unless the backend rotates both at once (the GPU does, one launch fewer per layer).
    /// </summary>
    void Rope(Tensor q, Tensor k, TokenLayout layout, RopeTable rope)
    {
        Rope(q, layout, rope);
        Rope(k, layout, rope);
    }
    /// <summary>y = silu(gate) * up.</summary>
    void SwiGlu(Tensor gate, Tensor up, Tensor y);

    /// <summary>
    /// One attention block: q [Tq, NH, D] against k, v [Tk, NKV, D] (NH a multiple of NKV, grouped-query),
    /// mask from the layouts (same sequence and key position ≤ query position). Writes output [Tq, NH, D]
    /// and lse [Tq, NH]; a query row that sees no key gets output 0 and lse -inf. Never builds Tq×Tk.
    /// </summary>
    void Attention(Tensor q, TokenLayout queries, Tensor k, Tensor v, TokenLayout keys, float scale, Tensor output, Tensor lse);

    /// <summary>
    /// Attention of row ranges of q, each against its own keys and values (a decode step's sequences, each against
    /// its cache where it is): <see cref="Attention"/> of each part into the same rows of output and lse, unless the
    /// backend takes several parts in one launch (the GPU's decode kernels do). Rows no part names are left alone.
    /// </summary>
    void AttentionEach(Tensor q, Tensor output, Tensor lse, float scale, params ReadOnlySpan<AttentionPart> parts)
    {
        foreach (var p in parts)
        {
            int n = p.Queries.Count;
            Attention(q.SliceRows(p.QueryRow, n), p.Queries, p.K, p.V, p.Keys, scale, output.SliceRows(p.QueryRow, n), lse.SliceRows(p.QueryRow, n));
        }
    }

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

    /// <summary>
    /// Per head, the rows of the highest scores (KV compression): rows[i, h] (I32 [count, H], 0 &lt; count ≤ n) are
    /// the rows of head h's count highest scores[·, h] (F32 or the activation type, [n, H]) in ascending order;
    /// ties at the cut go to the earlier rows and NaN ranks as −inf. Selected on the host unless the backend
    /// selects in place (the GPU does: no download and no wait for it in every layer).
    /// </summary>
    void TopRowsPerHead(Tensor scores, int count, Tensor rows)
    {
        int n = scores.Rows, heads = scores.Shape[1];
        var host = new float[n * heads];
        Download<float>(scores, host);
        var top = new int[count * heads];
        System.Threading.Tasks.Parallel.For(0, heads, h =>
        {
            var mine = Approximate.KvCompression.TopRows(host, n, heads, h, count);
            for (int i = 0; i < count; i++) top[i * heads + h] = mine[i];
        });
        using var uploaded = Upload<int>(top, count, heads);
        Copy(uploaded, rows);
    }

    /// <summary>
    /// The next token of each row of logits x [rows, vocab] for its draw: <see cref="TokenPicker.Pick"/> of the
    /// row read as floats (greedy draws: <see cref="Sampler.ArgMax"/>). The GPU picks them on the device and
    /// reads back one int a row instead of the logits.
    /// </summary>
    void DrawTokens(Tensor x, ReadOnlySpan<TokenDraw> draws, Span<int> result)
    {
        var host = new float[x.Length];
        Download<float>(x, host);
        int n = x.RowLength;
        for (int i = 0; i < x.Rows; i++)
            result[i] = draws[i].IsGreedy ? Sampler.ArgMax(host.AsSpan(i * n, n)) : TokenPicker.Pick(host.AsSpan(i * n, n), draws[i]);
    }

    /// <summary>
    /// The log probability of tokens[i] under row i of logits x [rows, vocab], and each row's <paramref name="top"/>
    /// most likely tokens: <see cref="Logprobs.Of"/> of the row read as floats. The GPU computes them on the
    /// device and reads back these figures instead of the logits.
    /// </summary>
    PositionLogprobs[] Logprobs(Tensor x, ReadOnlySpan<int> tokens, int top)
    {
        var host = new float[x.Length];
        Download<float>(x, host);
        int n = x.RowLength;
        var ids = tokens.ToArray();
        var result = new PositionLogprobs[x.Rows];
        System.Threading.Tasks.Parallel.For(0, x.Rows, i => result[i] = Sampling.Logprobs.Of(host.AsSpan(i * n, n), ids[i], top));
        return result;
    }

    /// <summary>
    /// The attention mass each key receives: mass[j, g] = Σ over query rows i and the query heads h of KV
    /// group g of softmax_j(scale · q[i, h] · k[j, g]) under the layouts' mask (q [Tq, NH, D], k [Tk, NKV, D],
    /// mass F32 [Tk, NKV]). The training-free KV compressor ranks keys by it; Tq is small (the query).
    /// </summary>
    void KeyAttentionMass(Tensor q, TokenLayout queries, Tensor k, TokenLayout keys, float scale, Tensor mass);
}

/// <summary>One part of <see cref="IBackend.AttentionEach"/>: query rows [QueryRow, QueryRow + Queries.Count) against K and V [Keys.Count, NKV, D].</summary>
public readonly record struct AttentionPart(int QueryRow, TokenLayout Queries, Tensor K, Tensor V, TokenLayout Keys);
