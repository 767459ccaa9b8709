namespace LongCtx.Planning;

/// <summary>
/// CP × TP on whole nodes: <see cref="ContextRanks"/> context-parallel ranks, each split over <see cref="TensorRanks"/>
/// GPUs of one node. A ring whose ranks span nodes runs at the inter-node link's pace; inside a node, at the node's.
/// </summary>
public readonly record struct Layout(int Nodes, int GpusPerNode, int TensorRanks)
{
    public int ContextRanks => Nodes * GpusPerNode / TensorRanks;
    public int Gpus => Nodes * GpusPerNode;
    public override string ToString() => $"CP{ContextRanks} x TP{TensorRanks}";
}

/// <summary>A prefill's predicted time and where it goes (seconds, all layers); Exposed is ring and all-to-all time the attention did not hide.</summary>
public sealed record PrefillTime(string Strategy, double Seconds, double Gemm, double Attention, double Exposed, double AllReduce, double Elementwise);

/// <summary>Bytes a GPU holds during a prefill: weights, the KV cache of the whole context, and the activations of one layer.</summary>
public sealed record MemoryUse(double Weights, double Kv, double Activations, double Capacity)
{
    public double Total => Weights + Kv + Activations;
    public bool Fits => Total <= Capacity;
}

/// <summary>
/// The paper's cost model (Yang et al. 2024, section 3.4 and appendix C), per layer and per GPU: GEMMs and attention
/// from compute rates, ring transfers from message sizes and the link, each ring step hiding its transfer behind its
/// attention as far as it can, pass-Q's all-to-all of partial outputs, and two all-reduces a layer for tensor
/// parallelism (not overlapped, as the engine runs them). T new tokens attend to P cached ones and causally to each
/// other; both are spread evenly over the N context ranks (load-balanced sharding).
/// </summary>
public static class CostModel
{
    /// <summary>Attention FLOPs of one layer over all heads: each of the T new tokens against the P cached ones and, causally, the new ones.</summary>
    public static double AttentionFlops(ModelShape m, long t, long p) => 4.0 * m.Heads * m.HeadDim * t * (p + t / 2.0);

    /// <summary>Query heads, KV heads (replicated past one a GPU) and MLP columns one GPU of a tensor group holds.</summary>
    public static (int Heads, int KvHeads, double Intermediate) PerGpu(ModelShape m, int tensor) =>
        (m.Heads / tensor, Math.Max(1, m.KvHeads / tensor), (double)m.Intermediate / tensor);

    /// <summary>One pass-KV ring step's message from one GPU: K and V of its share of all T + P tokens (padded to the largest share).</summary>
    public static double PassKvMessageBytes(ModelShape m, long t, long p, int ranks, int tensor, int e) =>
        Ceil(t + p, ranks) * 2.0 * PerGpu(m, tensor).KvHeads * m.HeadDim * e;

    /// <summary>One pass-Q ring step's message from one GPU: the queries of its share of the T new tokens.</summary>
    public static double PassQMessageBytes(ModelShape m, long t, int ranks, int tensor, int e) =>
        Ceil(t, ranks) * (double)PerGpu(m, tensor).Heads * m.HeadDim * e;

    /// <summary>One of the N − 1 messages of pass-Q's all-to-all: partial outputs (e bytes) and float32 LSEs of one owner's queries.</summary>
    public static double PassQPartialBytes(ModelShape m, long t, int ranks, int tensor, int e) =>
        Ceil(t, ranks) * (double)PerGpu(m, tensor).Heads * (m.HeadDim * e + 4);

    public static PrefillTime Prefill(ModelShape m, WeightFormat format, DeviceProfile device, Link ring, Layout layout, long t, long p, string strategy)
    {
        int n = layout.ContextRanks, tp = layout.TensorRanks, e = device.ActivationBytes;
        var (heads, kvHeads, inter) = PerGpu(m, tp);
        double rows = Ceil(t, n);

        double gemm = rows * 2.0 * m.AttentionWeights / tp / device.Gemm(format.AttentionGemmType).At(rows)
                    + rows * 2.0 * m.MlpWeights / tp / device.Gemm(format.MlpGemmType).At(rows);
        var attentionRate = n == 1 && p == 0 ? device.CausalAttentionFlops : device.FullAttentionFlops;
        double attention = AttentionFlops(m, t, p) / (n * tp) / attentionRate.At(rows);

        double exposed = 0, partial = rows * heads * (m.HeadDim * e + 4);
        if (n > 1)
        {
            double step = attention / n;
            double message = strategy == "pass-kv" ? PassKvMessageBytes(m, t, p, n, tp, e) : PassQMessageBytes(m, t, n, tp, e);
            exposed = (n - 1) * Math.Max(0, ring.Time(message) - step);
            if (strategy == "pass-q") exposed += (n - 1) * ring.Time(PassQPartialBytes(m, t, n, tp, e));
        }
        // Two all-reduces of the layer's rows (after o and after down), ring algorithm over the tensor group.
        double allReduce = tp == 1 ? 0 : 2 * (device.Node.LatencySeconds + 2.0 * (tp - 1) / tp * rows * m.Hidden * e / device.Node.BytesPerSecond);
        // Norms, residual adds, RoPE and SwiGLU read and write about this much a row; a ring's merges read two partial
        // outputs and write one, N − 1 times.
        double elementBytes = rows * (4.0 * m.Hidden + 2.0 * (heads + kvHeads) * m.HeadDim + 3 * inter) * e + (n - 1) * 3 * partial;
        double elementwise = elementBytes / device.MemoryBytesPerSecond;

        double L = m.Layers;
        return new PrefillTime(strategy, L * (gemm + attention + exposed + allReduce + elementwise),
            L * gemm, L * attention, L * exposed, L * allReduce, L * elementwise);
    }

    /// <summary>
    /// Weights by format (split over the tensor group; embeddings, LM head and norms whole on every GPU, as the engine
    /// keeps them), the KV cache of T + P tokens, and the activations of the largest phase of one layer.
    /// </summary>
    public static MemoryUse Memory(ModelShape m, WeightFormat format, DeviceProfile device, Layout layout, long t, long p, string strategy)
    {
        int n = layout.ContextRanks, tp = layout.TensorRanks, e = device.ActivationBytes;
        var (heads, kvHeads, inter) = PerGpu(m, tp);
        double weights = m.Layers * (m.AttentionWeights * (double)format.AttentionBytes + m.MlpWeights * format.MlpBytes + m.MlpRows * (double)format.MlpScaleBytesPerRow) / tp
                       + (m.EmbeddingWeights + m.NormWeights) * (double)format.OtherBytes;
        double kv = Ceil(t + p, n) * m.Layers * 2.0 * kvHeads * m.HeadDim * e;

        double rows = Ceil(t, n), keys = Ceil(t + p, n);
        double partial = rows * heads * (m.HeadDim * e + 4);
        double residual = 2 * rows * m.Hidden * e;
        double ringBuffers = n == 1 ? 0
            : strategy == "pass-kv" ? 2 * keys * 2.0 * kvHeads * m.HeadDim * e
            : 2 * rows * heads * m.HeadDim * e + n * partial;
        double attentionPhase = rows * (heads + 2.0 * kvHeads) * m.HeadDim * e + partial + ringBuffers;
        double mlpPhase = 2 * rows * inter * e;
        double activations = residual + Math.Max(attentionPhase, mlpPhase) + 4.0 * m.Vocab;
        return new MemoryUse(weights, kv, activations, device.MemoryBytes - device.ReservedBytes);
    }

    /// <summary>
    /// One decode step of one sequence on the distributed cache: every GPU reads its weights and its share of the KV at
    /// memory speed, pays a fixed cost a layer, and per layer the query goes round the ring and the partial outputs come
    /// back (N − 1 messages each way, latency-bound) while the tensor group all-reduces twice.
    /// </summary>
    public static double DecodeSeconds(ModelShape m, WeightFormat format, DeviceProfile device, Link ring, Layout layout, long context)
    {
        var memory = Memory(m, format, device, layout, 0, context, "pass-q");
        double read = (memory.Weights + memory.Kv) / device.MemoryBytesPerSecond;
        int n = layout.ContextRanks, tp = layout.TensorRanks;
        double perLayer = device.DecodeLayerSeconds + (tp > 1 ? 2 * device.Node.LatencySeconds : 0) + 2.0 * (n - 1) * ring.LatencySeconds;
        return read + m.Layers * perLayer;
    }

    private static double Ceil(long tokens, int ranks) => (tokens + ranks - 1) / ranks;
}
