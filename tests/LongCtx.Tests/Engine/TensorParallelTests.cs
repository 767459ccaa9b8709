using LongCtx.Approximate;
using LongCtx.Backends.Cpu;
using LongCtx.ContextParallel;
using LongCtx.Engine;
using LongCtx.Model;
using LongCtx.Sampling;
using LongCtx.Tests.ContextParallel;

namespace LongCtx.Tests.Engine;

/// <summary>
/// Tensor parallelism inside context parallelism (C context ranks × T tensor ranks, threads on the CPU)
/// against the same weights on one rank: a batched first turn, decode steps on the distributed cache and a
/// second turn against it give the same logits to float rounding (the o and down projections become sums of
/// T partial products). Random models with 8 query heads over 4 KV heads, so T ∈ {2, 4}, with the bias
/// layouts of Llama (attention_bias: q, k, v and o) and Qwen2 (q, k, v only); fresh weights and prompts
/// every run.
/// </summary>
public class TensorParallelTests
{
    public static TheoryData<string, int, int> Cases()
    {
        var data = new TheoryData<string, int, int>();
        foreach (var type in new[] { "llama", "qwen2" })
            foreach (var ranks in new[] { 1, 2, 3 })
                foreach (var tensor in new[] { 2, 4 })
                    data.Add(type, ranks, tensor);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void PrefillDecodeAndNextTurnEqualOneRank(string modelType, int ranks, int tensorRanks)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var config = Config(modelType);
        using var weights = ModelWeights.Dummy(config, seed, LongCtx.Tensors.DType.F32);
        using var whole = new InferenceEngine(config, new CpuRankGroup(config, weights, 1));
        using var split = new InferenceEngine(config, new CpuRankGroup(config, weights, ranks, tensorRanks: tensorRanks));
        string strategy = ranks == 1 ? StrategyNames.Dense : random.Next(2) == 0 ? StrategyNames.PassKv : StrategyNames.PassQ;
        string what = $"seed {seed} {modelType} {ranks} context x {tensorRanks} tensor ranks, {strategy}";
        int[] Prompt(int length) => Enumerable.Range(0, length).Select(_ => random.Next(config.VocabSize)).ToArray();

        int[][] first = [Prompt(random.Next(20, 120)), Prompt(random.Next(5, 60))];
        var a = first.Select(_ => whole.NewSequence()).ToList();
        var b = first.Select(_ => split.NewSequence()).ToList();
        var expected = whole.Prefill(a.Zip(first).ToList(), StrategyNames.Dense, keepLast: 3);
        var actual = split.Prefill(b.Zip(first).ToList(), strategy, keepLast: 3);
        for (int i = 0; i < first.Length; i++) AssertClose(actual.Logits[i], expected.Logits[i], $"{what}, first turn, sequence {i}");

        var next = expected.Logits.Select(l => Sampler.ArgMax(l.AsSpan(^config.VocabSize..))).ToArray();
        for (int step = 0; step < 6; step++)
        {
            var e = whole.Decode(a.Select((s, i) => (s, next[i])).ToList());
            var g = split.Decode(b.Select((s, i) => (s, next[i])).ToList());
            for (int i = 0; i < next.Length; i++) AssertClose(g[i], e[i], $"{what}, decode step {step}, sequence {i}");
            next = e.Select(l => Sampler.ArgMax(l)).ToArray();
        }

        var turn = Prompt(random.Next(3, 40));
        AssertClose(split.Prefill([(b[0], turn)], strategy).Logits[0], whole.Prefill([(a[0], turn)], StrategyNames.Dense).Logits[0], $"{what}, second turn");
    }

    [Theory]
    [InlineData(StrategyNames.Star)]
    [InlineData(StrategyNames.Apb)]
    public void ApproximateStrategiesSplitTheHeadsExactly(string strategy)
    {
        // Star and APB with the query-attention scorer work per KV head, so splitting the heads changes only rounding.
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var config = Config("llama");
        using var weights = ModelWeights.Dummy(config, seed, LongCtx.Tensors.DType.F32);
        int ranks = random.Next(2, 4);
        using var whole = new InferenceEngine(config, new CpuRankGroup(config, weights, ranks));
        using var split = new InferenceEngine(config, new CpuRankGroup(config, weights, ranks, tensorRanks: 2));
        var prompt = Enumerable.Range(0, random.Next(200, 400)).Select(_ => random.Next(config.VocabSize)).ToArray();
        var options = new ApproximateOptions(8, AnchorTokens: 16, PassingTokens: 12);
        var expected = whole.Prefill([(whole.NewSequence(), prompt)], strategy, keepLast: 2, approximate: options);
        var actual = split.Prefill([(split.NewSequence(), prompt)], strategy, keepLast: 2, approximate: options);
        AssertClose(actual.Logits[0], expected.Logits[0], $"seed {seed} {strategy} on {ranks} context x 2 tensor ranks");
    }

    [Fact]
    public void HeadsThatDoNotSplitAreRefusedWithTheSizesThatWould()
    {
        var config = Config("llama");
        var e = Assert.Throws<SettingException>(() => TensorSlice.Of(config, 0, 3));
        Assert.Equal((Setting.TensorParallel, 3), (e.Setting, e.Value));
        Assert.Equal("tensor-parallel 3 must divide num_key_value_heads (4), num_attention_heads (8) and intermediate_size (96): use 1, 2, 4", e.Message);
    }

    private static void AssertClose(float[] actual, float[] expected, string what)
    {
        double error = DenseReference.RelativeError(actual, expected);
        Assert.True(error < 1e-5, $"{what}: relative error {error:e2}");
    }

    /// <summary>8 query heads over 4 KV heads of 8; Llama with attention_bias, or Qwen2 (biases on q, k, v).</summary>
    private static ModelConfig Config(string modelType) => ModelConfig.FromJson($$"""
        {
          "architectures": ["{{(modelType == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM")}}"], "model_type": "{{modelType}}", "attention_bias": true,
          "hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2,
          "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 8, "vocab_size": 300,
          "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false
        }
        """, "test config.json");
}
