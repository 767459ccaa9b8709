using LongCtx.Model;
using LongCtx.Planning;

namespace LongCtx.Tests.Planning;

/// <summary>
/// The planner's cost model on cases computed by hand: one layer's FLOPs and ring messages for pass-KV and pass-Q with
/// and without a cache hit, a prefill's time on flat rates (hidden and exposed transfers, pass-Q's all-to-all), and the
/// memory a GPU holds for Llama 3 405B in FP8 on TP8.
/// </summary>
public class CostModelTests
{
    private static readonly ModelShape Llama8B = ModelShape.Of(ModelConfig.Preset("llama3-8b"), "llama3-8b");
    private static readonly ModelShape Llama405B = ModelShape.Of(ModelConfig.Preset("llama3-405b"), "llama3-405b");

    [Fact]
    public void OneLayerOfLlama8BFullPrefillOnTwoRanks()
    {
        // T = 1024 new tokens, nothing cached, N = 2, bf16: each token attends causally to 512 keys on average.
        Assert.Equal(4.0 * 32 * 128 * 1024 * 512, CostModel.AttentionFlops(Llama8B, 1024, 0));
        Assert.Equal(8_589_934_592, CostModel.AttentionFlops(Llama8B, 1024, 0));
        // pass-KV: K and V of 512 tokens, 8 KV heads of 128: 512·2·8·128·2 bytes.
        Assert.Equal(2_097_152, CostModel.PassKvMessageBytes(Llama8B, 1024, 0, ranks: 2, tensor: 1, e: 2));
        // pass-Q: the queries of 512 tokens, 32 heads of 128: four times fewer KV heads than query heads, twice the bytes.
        Assert.Equal(4_194_304, CostModel.PassQMessageBytes(Llama8B, 1024, ranks: 2, tensor: 1, e: 2));
        // The all-to-all's message: 512 rows of 32 heads, each 128 bf16 outputs and a float32 LSE.
        Assert.Equal(512 * 32 * (128 * 2 + 4), CostModel.PassQPartialBytes(Llama8B, 1024, ranks: 2, tensor: 1, e: 2));
        Assert.Equal(2.0 * (4096L * 4096 * 2 + 4096L * 1024 * 2 + 3L * 4096 * 14336), Llama8B.LayerGemmFlopsPerToken);
    }

    [Fact]
    public void OneLayerOfLlama8BWithACacheHitOnFourRanks()
    {
        // 1024 new tokens after 7168 cached (87.5% hit): each new token sees 7168 + 512 keys on average.
        Assert.Equal(128_849_018_880, CostModel.AttentionFlops(Llama8B, 1024, 7168));
        // pass-KV now carries the cache too: 8192 / 4 = 2048 tokens' K and V a step; pass-Q only the 256 new queries.
        Assert.Equal(2048 * 2 * 8 * 128 * 2, CostModel.PassKvMessageBytes(Llama8B, 1024, 7168, ranks: 4, tensor: 1, e: 2));
        Assert.Equal(256 * 32 * 128 * 2, CostModel.PassQMessageBytes(Llama8B, 1024, ranks: 4, tensor: 1, e: 2));
        // Under TP8 a GPU holds 4 query heads and 1 KV head: both messages shrink 8 times, their ratio stays.
        Assert.Equal(2048 * 2 * 1 * 128 * 2, CostModel.PassKvMessageBytes(Llama8B, 1024, 7168, ranks: 4, tensor: 8, e: 2));
        Assert.Equal(256 * 4 * 128 * 2, CostModel.PassQMessageBytes(Llama8B, 1024, ranks: 4, tensor: 8, e: 2));
        // Odd shares round up (the ring pads to the largest): 1001 + 7000 tokens over 4 ranks is 2001 a rank.
        Assert.Equal(2001 * 2 * 8 * 128 * 2, CostModel.PassKvMessageBytes(Llama8B, 1001, 7000, ranks: 4, tensor: 1, e: 2));
    }

    /// <summary>A one-layer model on flat rates, every term computed by hand (see the comments).</summary>
    [Fact]
    public void PrefillTimeOnFlatRates()
    {
        var m = new ModelShape("toy", Layers: 1, Hidden: 1024, Heads: 8, KvHeads: 2, HeadDim: 128, Intermediate: 4096, Vocab: 1000, TiedEmbeddings: true);
        var layout = new Layout(Nodes: 2, GpusPerNode: 1, TensorRanks: 1);
        var fast = new Link("fast", 1e9, 0);
        var slow = new Link("slow", 1e8, 0);
        // GEMMs: 1024 rows · 2 · (2,621,440 attention + 12,582,912 MLP weights) at 1 TFLOP/s.
        const double gemm = 0.031138512896;
        // Attention: 4·8·128·2048·1024 FLOPs over 2 ranks at 1 TFLOP/s; a ring step is half of it.
        const double attention = 0.004294967296, step = attention / 2;
        // Norms, RoPE, SwiGLU: 1024 rows · (4·1024 + 2·10·128 + 3·4096) · 2 bytes; one merge of 1024·8·260-byte partials, read twice and written once; at 1 TB/s.
        const double elementwise = (1024.0 * 18944 * 2 + 3 * 2_129_920) / 1e12;

        var kv = CostModel.Prefill(m, WeightFormat.Bf16, Flat(), fast, layout, 2048, 0, "pass-kv");
        Assert.Equal(gemm, kv.Gemm, 1e-12);
        Assert.Equal(attention, kv.Attention, 1e-12);
        Assert.Equal(0, kv.Exposed); // 1 MB of K and V at 1 GB/s: 1.05 ms, under the step's 2.15 ms
        Assert.Equal(elementwise, kv.Elementwise, 1e-15);
        Assert.Equal(gemm + attention + elementwise, kv.Seconds, 1e-12);

        // pass-Q hides its 2 MB of queries too (2.10 ms), but then sends 2,129,920 bytes of partial outputs back.
        var q = CostModel.Prefill(m, WeightFormat.Bf16, Flat(), fast, layout, 2048, 0, "pass-q");
        Assert.Equal(0.00212992, q.Exposed, 1e-12);
        Assert.Equal(kv.Seconds + 0.00212992, q.Seconds, 1e-12);

        // At 100 MB/s the K and V take 10.49 ms: 8.34 ms of it is left when the step's attention is done.
        var exposed = CostModel.Prefill(m, WeightFormat.Bf16, Flat(), slow, layout, 2048, 0, "pass-kv");
        Assert.Equal(0.01048576 - step, exposed.Exposed, 1e-12);
    }

    [Fact]
    public void TensorParallelAllReducesAreChargedOnTheNodeLink()
    {
        var m = new ModelShape("toy", 1, 1024, 8, 2, 128, 4096, 1000, true);
        var device = Flat() with { IntraNode = new Link("node", 1e10, 1e-5) };
        var p = CostModel.Prefill(m, WeightFormat.Bf16, device, device.Node, new Layout(1, 2, 2), 2048, 0, "pass-kv");
        // Two all-reduces of 2048 rows · 1024 · 2 bytes; the ring algorithm moves 2·(2-1)/2 of it; plus the latency each.
        Assert.Equal(2 * (1e-5 + 2048.0 * 1024 * 2 / 1e10), p.AllReduce, 1e-12);
    }

    [Fact]
    public void Llama405BInFp8OnTp8()
    {
        var device = BuiltinProfiles.Device("h100-500w");
        var tp8 = new Layout(1, 8, 8);
        var memory = CostModel.Memory(Llama405B, WeightFormat.Fp8, device, tp8, 131072, 0, "pass-kv");
        // Attention projections bf16: 126 · 570,425,344 · 2 / 8; MLPs one byte a weight: 126 · 2,617,245,696 / 8, with a float32
        // scale for each of 122,880 rows; embedding and LM head (2 · 128,256 · 16,384) and the 253 norms bf16 on every GPU.
        const double weights = 17_968_398_336.0 + 41_221_619_712 + 7_741_440 + 8_405_385_216 + 8_290_304;
        Assert.Equal(weights, memory.Weights, 0.5);
        Assert.Equal(67.6e9, memory.Weights, 0.05e9);
        // 131,072 tokens · 126 layers · K and V · 1 KV head of 128 · 2 bytes.
        Assert.Equal(8_455_716_864, memory.Kv, 0.5);
        // One layer's activations at 131,072 rows: the residual stream and its norm (8.59 GB) and the MLP's gate and up (3.49 GB).
        Assert.Equal(8_589_934_592.0 + 3_489_660_928 + 4 * 128256, memory.Activations, 0.5);
        Assert.True(memory.Fits, $"{memory.Total / 1e9:0.0} GB on a 96 GB H100");
        // On 80 GB H100s a 128K prefill of 405B needs a second node (CP2: half the KV and activations).
        var h100 = BuiltinProfiles.Device("h100");
        Assert.False(CostModel.Memory(Llama405B, WeightFormat.Fp8, h100, tp8, 131072, 0, "pass-kv").Fits);
        Assert.True(CostModel.Memory(Llama405B, WeightFormat.Fp8, h100, new Layout(2, 8, 8), 131072, 0, "pass-kv").Fits);
        // bf16 weights do not fit 8 GPUs of either kind.
        Assert.False(CostModel.Memory(Llama405B, WeightFormat.Bf16, device, tp8, 8192, 0, "pass-kv").Fits);
    }

    [Fact]
    public void DecodeReadsWeightsAndTheCacheShare()
    {
        var m = new ModelShape("toy", 2, 1024, 8, 2, 128, 4096, 1000, true);
        var device = Flat() with { DecodeLayerSeconds = 1e-5 };
        var link = new Link("l", 1e9, 2e-5);
        var layout = new Layout(2, 1, 1);
        var memory = CostModel.Memory(m, WeightFormat.Bf16, device, layout, 0, 10000, "pass-q");
        double expected = (memory.Weights + memory.Kv) / 1e12 + 2 * (1e-5 + 2 * 1 * 2e-5);
        Assert.Equal(expected, CostModel.DecodeSeconds(m, WeightFormat.Bf16, device, link, layout, 10000), 1e-15);
        // 5000 cached tokens a rank · 2 layers · K and V · 2 KV heads of 128 · 2 bytes.
        Assert.Equal(5000.0 * 2 * 2 * 2 * 128 * 2, memory.Kv);
    }

    [Fact]
    public void RateCurvesInterpolateOnALogScaleAndHoldTheirEnds()
    {
        var c = new RateCurve([(1024, 100), (4096, 200)], "test");
        Assert.Equal(100, c.At(10));
        Assert.Equal(150, c.At(2048), 1e-9);
        Assert.Equal(200, c.At(1e6));
        Assert.Throws<LongCtxException>(() => new RateCurve([(1024, 0)], "test"));
    }

    internal static DeviceProfile Flat() => new("flat", "test", ActivationBytes: 2, MemoryBytes: 80e9, ReservedBytes: 0, MemoryBytesPerSecond: 1e12,
        GemmFlops: new Dictionary<string, RateCurve> { ["bf16"] = RateCurve.Flat(1e12, "gemm") },
        CausalAttentionFlops: RateCurve.Flat(1e12, "causal"), FullAttentionFlops: RateCurve.Flat(1e12, "full"),
        IntraNode: null, DecodeLayerSeconds: 0);
}
