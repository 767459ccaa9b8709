using LongCtx.Backends;
using LongCtx.Comm;
using LongCtx.Sampling;
using LongCtx.Tensors;

namespace LongCtx.Model;

/// <summary>
/// One rank's copy of a decoder (Llama 2/3, Mistral, Qwen2/3, Gemma 2/3) on its backend, and its forward
/// pass over the rows the rank owns. Attention is delegated: the caller passes the strategy that turns
/// this rank's q, k, v into attention output, communicating with the other ranks as it must.
/// Under tensor parallelism the replica holds only its <see cref="TensorSlice"/> of every layer — its heads
/// and MLP columns — and completes the o and down projections with an all-reduce over the tensor-parallel
/// ranks, so every one of them leaves each layer with the whole hidden state (Megatron-style: two all-reduces
/// per layer, nothing else travels between them).
/// </summary>
public sealed class ModelReplica : IDisposable
{
    private readonly IBackend _b;
    private readonly Tensor _embedding, _finalNorm, _lmHead;
    private readonly Layer[] _layers;
    private readonly RopeTable _rope, _slidingRope;
    private readonly List<IDisposable> _slicedWeights = [];

    /// <param name="tensorParallel">the ranks holding the other slices of every layer; null (or one rank) holds whole layers.</param>
    public ModelReplica(ModelConfig config, ModelWeights weights, IBackend backend, ICommunicator? tensorParallel = null)
    {
        Config = config;
        _b = backend;
        TensorComm = tensorParallel is { Size: > 1 } ? tensorParallel : null;
        Slice = TensorComm is null ? TensorSlice.Whole : TensorSlice.Of(config, TensorComm.Rank, TensorComm.Size);
        _embedding = backend.LoadWeight(weights.Embedding);
        _finalNorm = backend.LoadWeight(weights.FinalNorm);
        _lmHead = ReferenceEquals(weights.LmHead, weights.Embedding) ? _embedding : backend.LoadWeight(weights.LmHead);
        _layers = weights.Layers.Select(w => new Layer(backend, TensorParallelWeights.Slice(w, config, Slice, _slicedWeights))).ToArray();
        _rope = config.Rope.BuildTable(config.HeadDim);
        _slidingRope = config.SlidingRope?.BuildTable(config.HeadDim) ?? _rope;
        KvCache = weights.KvCache;
    }

    /// <summary>
    /// The element type of the KV cache, and so of the blocks pass-KV's ring moves: F8E4M3 with an FP8 KV cache, else the
    /// backend's activation type. The pass-KV / pass-Q heuristic takes its bytes per element (e) from it.
    /// </summary>
    public DType KvCacheType => KvCache is null ? _b.ActivationType : DType.F8E4M3;

    /// <summary>The FP8 KV cache's scales per layer; null: the cache holds the backend's activation type.</summary>
    public Quantization.Fp8KvScales? KvCache { get; }

    public ModelConfig Config { get; }
    public IBackend Backend => _b;
    public TensorSlice Slice { get; }
    /// <summary>The tensor-parallel ranks' communicator; null when this replica holds whole layers.</summary>
    public ICommunicator? TensorComm { get; }
    /// <summary>Query heads this replica computes (all of them without tensor parallelism).</summary>
    public int Heads => Slice.Heads(Config);
    /// <summary>KV heads this replica computes and caches.</summary>
    public int KvHeads => Slice.KvHeads(Config);

    /// <summary>Attention for one layer: (layer, q [T,NH,D], k [T,NKV,D], v [T,NKV,D]) → output [T,NH,D], with this replica's heads.</summary>
    public delegate Tensor AttentionFunction(int layer, Tensor q, Tensor k, Tensor v);

    /// <summary>
    /// Runs every layer on the given rows and returns the final-normed hidden states [T, hidden];
    /// <paramref name="layerDone"/> sees the hidden states after each layer.
    /// </summary>
    public Tensor Forward(ReadOnlySpan<int> tokenIds, TokenLayout layout, AttentionFunction attend, Action<Tensor>? layerDone = null)
    {
        var c = Config;
        int t = tokenIds.Length, heads = Heads, kvHeads = KvHeads, mlp = Slice.Intermediate(c);
        using var ids = _b.Upload(tokenIds, t);
        // Scratch, not Allocate: every activation below is written whole (embedding, norm, projection) before it is read.
        var x = _b.Scratch(_b.ActivationType, t, c.HiddenSize);
        _b.Embedding(ids, _embedding, x);
        if (c.ScaleEmbedding) _b.Scale(x, EmbeddingScale());
        using var h = _b.Scratch(_b.ActivationType, t, c.HiddenSize);
        for (int l = 0; l < _layers.Length; l++)
        {
            var w = _layers[l];
            using (var q = _b.Scratch(_b.ActivationType, t, heads * c.HeadDim))
            using (var k = _b.Scratch(_b.ActivationType, t, kvHeads * c.HeadDim))
            using (var v = _b.Scratch(_b.ActivationType, t, kvHeads * c.HeadDim))
            {
                AttentionInputs(x, w, h, q, k, v, layout, c.IsSliding(l) ? _slidingRope : _rope);
                using var attention = attend(l, q.View(t, heads, c.HeadDim), k.View(t, kvHeads, c.HeadDim), v.View(t, kvHeads, c.HeadDim));
                AddProjection(attention.View(t, heads * c.HeadDim), w.O, w.OBias, x, h, c.SandwichNorms ? w.PostAttentionNorm : null);
            }
            using (var gate = _b.Scratch(_b.ActivationType, t, mlp))
            using (var up = _b.Scratch(_b.ActivationType, t, mlp))
            {
                MlpInputs(x, w, h, gate, up);
                AddProjection(gate, w.Down, null, x, h, c.SandwichNorms ? w.PostFeedforwardNorm : null);
            }
            layerDone?.Invoke(x);
        }
        _b.RmsNorm(x, _finalNorm, (float)c.RmsNormEps, x, c.NormWeightOffset);
        return x;
    }

    /// <summary>
    /// A layer's rotated q and k and its v from x: the fused norm, projections and rotation where the model is Llama-style;
    /// else the norm (by (1 + w) for Gemma), the projections, each head's q and k normed over its head_dim (Qwen3, Gemma 3:
    /// the rows of [T·heads, head_dim] views) and the rotation. h is the normed x or, where the backend fused the norm,
    /// unwritten: working space afterwards.
    /// </summary>
    private void AttentionInputs(Tensor x, Layer w, Tensor h, Tensor q, Tensor k, Tensor v, TokenLayout layout, RopeTable rope)
    {
        var c = Config;
        float eps = (float)c.RmsNormEps, offset = c.NormWeightOffset;
        if (!c.QkNorm && offset == 0f)
        {
            _b.NormedRotatedQkv(x, w.InputNorm, eps, h, (w.Q, w.QBias, q), (w.K, w.KBias, k), (w.V, w.VBias, v), layout, rope);
            return;
        }
        if (offset == 0f) _b.NormedLinearEach(x, w.InputNorm, eps, h, (w.Q, w.QBias, q), (w.K, w.KBias, k), (w.V, w.VBias, v));
        else
        {
            _b.RmsNorm(x, w.InputNorm, eps, h, offset);
            _b.LinearEach(h, (w.Q, w.QBias, q), (w.K, w.KBias, k), (w.V, w.VBias, v));
        }
        int t = x.Rows, d = c.HeadDim;
        if (c.QkNorm)
        {
            var (qHeads, kHeads) = (q.View(t * Heads, d), k.View(t * KvHeads, d));
            _b.RmsNorm(qHeads, w.QNorm!, eps, qHeads, offset);
            _b.RmsNorm(kHeads, w.KNorm!, eps, kHeads, offset);
        }
        _b.Rope(q.View(t, Heads, d), k.View(t, KvHeads, d), layout, rope);
    }

    /// <summary>
    /// The MLP's first half, gate = act(norm(x) · Gateᵀ) · (norm(x) · Upᵀ): SwiGLU with the fused norm where the model is
    /// Llama-style, else GELU-tanh (Gemma) after the norm — pre_feedforward_layernorm with sandwich norms. up is working space.
    /// </summary>
    private void MlpInputs(Tensor x, Layer w, Tensor h, Tensor gate, Tensor up)
    {
        var c = Config;
        float eps = (float)c.RmsNormEps;
        if (c.HiddenActivation == Activation.Silu && c.NormWeightOffset == 0f && !c.SandwichNorms)
        {
            _b.NormedSwiGluLinear(x, w.PostAttentionNorm, eps, h, w.Gate, w.Up, gate, up);
            return;
        }
        _b.RmsNorm(x, c.SandwichNorms ? w.PreFeedforwardNorm! : w.PostAttentionNorm, eps, h, c.NormWeightOffset);
        if (c.HiddenActivation == Activation.Silu)
        {
            _b.SwiGluLinear(h, w.Gate, w.Up, gate, up);
            return;
        }
        _b.Linear(h, w.Gate, null, gate);
        _b.Linear(h, w.Up, null, up);
        _b.GeluTanhGlu(gate, up, gate);
    }

    /// <summary>
    /// √hidden in the activations' type, as transformers' Gemma multiplies by torch.tensor(√hidden, dtype=activations'):
    /// rounded to bf16 on a GPU (61.97 → 62 at hidden 3840), exact in the CPU's float32.
    /// </summary>
    private float EmbeddingScale()
    {
        float scale = MathF.Sqrt(Config.HiddenSize);
        return _b.ActivationType == DType.BF16 ? BFloat16Round(scale) : scale;
    }

    private static float BFloat16Round(float f)
    {
        uint bits = BitConverter.SingleToUInt32Bits(f);
        bits += 0x7FFFu + ((bits >> 16) & 1); // round to nearest even
        return BitConverter.UInt32BitsToSingle(bits & 0xFFFF0000u);
    }

    /// <summary>
    /// The residual connection of the o or down projection: x += input · Wᵀ (+ bias), the product summed over
    /// the tensor-parallel ranks first and, with sandwich norms, normed by <paramref name="postNorm"/> before it is added.
    /// <paramref name="partial"/> [T, hidden] holds the product where it has to exist on its own (to be all-reduced, to
    /// take the bias or to be normed); otherwise the GEMM adds into x directly.
    /// </summary>
    private void AddProjection(Tensor input, Tensor weight, Tensor? bias, Tensor x, Tensor partial, Tensor? postNorm = null)
    {
        if (TensorComm is null && bias is null && postNorm is null)
        {
            _b.LinearAccumulate(input, weight, x);
            return;
        }
        _b.Linear(input, weight, bias, partial);
        TensorComm?.AllReduceSum(partial);
        if (postNorm is not null) _b.RmsNorm(partial, postNorm, (float)Config.RmsNormEps, partial, Config.NormWeightOffset);
        _b.Add(x, partial);
    }

    /// <summary>Logits [rows, vocab] of final hidden states, downloaded to the host.</summary>
    public float[] Logits(Tensor hidden)
    {
        using var logits = _b.Allocate(_b.ActivationType, hidden.Rows, Config.VocabSize);
        LogitsInto(hidden, logits);
        var host = new float[logits.Length];
        _b.Download<float>(logits, host);
        return host;
    }

    /// <summary>
    /// The next token of each final hidden state for its draw and, with <paramref name="logprobsTop"/>, each drawn
    /// token's log probability and its position's most likely tokens: only these come back from the backend.
    /// </summary>
    public (int[] Tokens, PositionLogprobs[]? Logprobs) DrawTokens(Tensor hidden, ReadOnlySpan<TokenDraw> draws, int? logprobsTop = null)
    {
        using var logits = _b.Allocate(_b.ActivationType, hidden.Rows, Config.VocabSize);
        LogitsInto(hidden, logits);
        var tokens = new int[hidden.Rows];
        _b.DrawTokens(logits, draws, tokens);
        return (tokens, logprobsTop is { } top ? _b.Logprobs(logits, tokens, top) : null);
    }

    /// <summary>
    /// The log probability of tokens[i] after final hidden state i, and its position's <paramref name="top"/> most
    /// likely tokens: computed a slice of rows at a time, so the logits of a long prompt never exist at once.
    /// </summary>
    public PositionLogprobs[] Logprobs(Tensor hidden, int[] tokens, int top)
    {
        const int slice = 256; // 64 MB of bf16 logits for a 128K vocabulary
        var result = new PositionLogprobs[hidden.Rows];
        // One buffer for every slice: the GEMM overwrites what it holds.
        using var buffer = _b.Allocate(_b.ActivationType, Math.Min(slice, hidden.Rows), Config.VocabSize);
        for (int start = 0; start < hidden.Rows; start += slice)
        {
            int n = Math.Min(slice, hidden.Rows - start);
            var logits = buffer.SliceRows(0, n);
            LogitsInto(hidden.SliceRows(start, n), logits);
            _b.Logprobs(logits, tokens.AsSpan(start, n), top).CopyTo(result, start);
        }
        return result;
    }

    /// <summary>The LM head's logits of final hidden states, soft-capped where the model caps them (Gemma 2).</summary>
    private void LogitsInto(Tensor hidden, Tensor logits)
    {
        _b.Linear(hidden, _lmHead, null, logits);
        if (Config.FinalLogitSoftcap is double cap) _b.SoftCap(logits, (float)cap);
    }

    public void Dispose()
    {
        // Weights the CPU backend wraps are owned by ModelWeights; the tensor handles free nothing there.
        _embedding.Dispose();
        _finalNorm.Dispose();
        if (!ReferenceEquals(_lmHead, _embedding)) _lmHead.Dispose();
        foreach (var l in _layers) l.Dispose();
        foreach (var w in _slicedWeights) w.Dispose();
    }

    private sealed class Layer : IDisposable
    {
        public Layer(IBackend b, LayerWeights w)
        {
            Q = b.LoadWeight(w.QProj); K = b.LoadWeight(w.KProj); V = b.LoadWeight(w.VProj); O = b.LoadWeight(w.OProj);
            QBias = w.QBias is null ? null : b.LoadWeight(w.QBias);
            KBias = w.KBias is null ? null : b.LoadWeight(w.KBias);
            VBias = w.VBias is null ? null : b.LoadWeight(w.VBias);
            OBias = w.OBias is null ? null : b.LoadWeight(w.OBias);
            Gate = b.LoadWeight(w.GateProj); Up = b.LoadWeight(w.UpProj); Down = b.LoadWeight(w.DownProj);
            InputNorm = b.LoadWeight(w.InputNorm); PostAttentionNorm = b.LoadWeight(w.PostAttentionNorm);
            QNorm = w.QNorm is null ? null : b.LoadWeight(w.QNorm);
            KNorm = w.KNorm is null ? null : b.LoadWeight(w.KNorm);
            PreFeedforwardNorm = w.PreFeedforwardNorm is null ? null : b.LoadWeight(w.PreFeedforwardNorm);
            PostFeedforwardNorm = w.PostFeedforwardNorm is null ? null : b.LoadWeight(w.PostFeedforwardNorm);
        }

        public Tensor Q, K, V, O, Gate, Up, Down, InputNorm, PostAttentionNorm;
        public Tensor? QBias, KBias, VBias, OBias, QNorm, KNorm, PreFeedforwardNorm, PostFeedforwardNorm;

        public void Dispose()
        {
            foreach (var t in new[] { Q, K, V, O, Gate, Up, Down, InputNorm, PostAttentionNorm, QBias, KBias, VBias, OBias, QNorm, KNorm, PreFeedforwardNorm, PostFeedforwardNorm })
                t?.Dispose();
        }
    }
}
