using System.Text.Json.Nodes;
using LongCtx.Backends;
using LongCtx.ContextParallel;
using LongCtx.Model;
using LongCtx.Tests.ContextParallel;
using LongCtx.Tests.Engine;

namespace LongCtx.Tests.Families;

/// <summary>
/// The families' config.json in both spellings — as transformers 5 writes it (<c>rope_parameters</c>, per layer type
/// for Gemma 3, <c>layer_types</c>, <c>dtype</c>) and as checkpoints published with transformers 4 do (top-level
/// <c>rope_theta</c>/<c>rope_scaling</c>, Gemma 3's <c>rope_local_base_freq</c> and <c>sliding_window_pattern</c>) —
/// load to the same model, the one the fixture's facts describe; and a model whose window the config hides is caught by
/// the fixtures.
/// </summary>
public class FamilyConfigTests
{
    public static TheoryData<string> Families() => new(ReferenceModel.FamilyNames);

    [Theory]
    [MemberData(nameof(Families))]
    public void BothSpellingsLoadToTheModelOfTheFacts(string name)
    {
        string dir = Path.Combine(ReferenceModel.Named(name).Directory);
        var v4 = ModelConfig.Load(dir) with { Source = "" };
        var published = ModelConfig.FromJson(File.ReadAllText(Path.Combine(dir, "config.transformers4.json")), "") with { Source = "" };
        var v5 = ModelConfig.FromJson(Transformers5[name], "") with { Source = "" };
        foreach (var other in new[] { published, v5 }) AssertSameModel(v4, other, name);

        var facts = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "facts.json")))!;
        var types = facts["layer_types"]!.AsArray().Select(t => (string)t! == "sliding_attention").ToArray();
        Assert.Equal(types, Enumerable.Range(0, v4.NumLayers).Select(v4.IsSliding));
        Assert.Equal((int?)facts["sliding_window"], v4.SlidingWindow);
        Assert.Equal((int)facts["head_dim"]!, v4.HeadDim);
    }

    [Fact]
    public void Gemma3ReadsEveryTrait()
    {
        var c = ModelConfig.FromJson(Transformers5["tiny-gemma3"], "c");
        Assert.Equal(("gemma3_text", 7, 128), (c.ModelType, c.NumLayers, c.SlidingWindow));
        Assert.Equal([0, 1, 2, 3, 4, 6], Enumerable.Range(0, 7).Where(c.IsSliding));
        Assert.Equal(new RopeConfig { RopeType = "linear", Theta = 1e6, Factor = 8 }, c.RopeOf(5));
        Assert.Equal(RopeConfig.Default(1e4), c.RopeOf(0));
        Assert.True(c.QkNorm && c.SandwichNorms && c.ScaleEmbedding && c.TieWordEmbeddings);
        Assert.Equal((1f, Activation.GeluTanh, (double?)48, (double?)null, (double?)null),
            (c.NormWeightOffset, c.HiddenActivation, c.QueryPreAttnScalar, c.AttnLogitSoftcap, c.FinalLogitSoftcap));
        Assert.Equal(new AttentionRule(1f / MathF.Sqrt(48), 128), c.AttentionOf(0));
        Assert.Equal(new AttentionRule(1f / MathF.Sqrt(48)), c.AttentionOf(5));

        var g2 = ModelConfig.FromJson(Transformers5["tiny-gemma2"], "c");
        Assert.Equal([0, 2], Enumerable.Range(0, 4).Where(g2.IsSliding));
        Assert.Equal(new AttentionRule(1f / MathF.Sqrt(48), 64, 6f), g2.AttentionOf(0));
        Assert.Equal(8, g2.FinalLogitSoftcap);
        Assert.False(g2.QkNorm);
    }

    /// <summary>The published Gemma 3 spelling's pattern decides the layer types, and the local base frequency defaults to 10000.</summary>
    [Fact]
    public void Gemma3PublishedSpellingHasItsDefaults()
    {
        string json = File.ReadAllText(Path.Combine(ReferenceModel.Named("tiny-gemma3").Directory, "config.transformers4.json"));
        Assert.Contains("\"sliding_window_pattern\": 6", json);
        var everyOther = ModelConfig.FromJson(json.Replace("\"sliding_window_pattern\": 6", "\"sliding_window_pattern\": 2"), "c");
        Assert.Equal([0, 2, 4, 6], Enumerable.Range(0, 7).Where(everyOther.IsSliding));
        Assert.Contains("\"rope_local_base_freq\": 10000.0,", json);
        var local = ModelConfig.FromJson(json.Replace("\"rope_local_base_freq\": 10000.0,", "\"rope_local_base_freq\": 20000.0,"), "c");
        Assert.Equal(RopeConfig.Default(20000), local.RopeOf(0));
        var unset = ModelConfig.FromJson(json.Replace("\"rope_local_base_freq\": 10000.0,", ""), "c");
        Assert.Equal(RopeConfig.Default(10000), unset.RopeOf(0));
    }

    [Fact]
    public void Qwen2WindowNeedsUseSlidingWindow()
    {
        string v5 = Transformers5["tiny-qwen2-swa"];
        Assert.Equal([2, 3], Enumerable.Range(0, 4).Where(ModelConfig.FromJson(v5, "c").IsSliding));
        // transformers: without use_sliding_window the window is null whatever layer_types say.
        var off = ModelConfig.FromJson(v5.Replace("\"use_sliding_window\": true", "\"use_sliding_window\": false"), "c");
        Assert.Null(off.SlidingWindow);
        Assert.Null(off.WindowOf(3));
    }

    /// <summary>Without its window a sliding-window model computes something else, and the fixtures see it.</summary>
    [Theory]
    [InlineData("tiny-mistral-swa")]
    [InlineData("tiny-gemma3")]
    public void AModelWhoseWindowIsIgnoredFailsTheFixture(string name)
    {
        var reference = ReferenceModel.Named(name);
        var config = reference.Config with { SlidingWindow = null };
        using var weights = ModelWeights.Load(reference.Directory, config);
        using var engine = new LongCtx.Engine.InferenceEngine(config, new LongCtx.Backends.Cpu.CpuRankGroup(config, weights, 1));
        var prefill = engine.Prefill([(engine.NewSequence(), reference.InputIds)], StrategyNames.Dense, keepLast: 4, argmaxAll: true);
        Assert.True(DenseReference.RelativeError(prefill.Logits[0], reference.LogitsLast4) > 0.1);
        Assert.True(reference.ArgmaxMismatches(prefill.ArgmaxAll![0], reference.InputIds.Length).Length > 500);
    }

    private static void AssertSameModel(ModelConfig a, ModelConfig b, string name)
    {
        // Records compare arrays by reference: the lists apart.
        Assert.Equal(a with { SlidingLayers = Array.Empty<bool>(), EosTokenIds = Array.Empty<int>() }, b with { SlidingLayers = Array.Empty<bool>(), EosTokenIds = Array.Empty<int>() });
        Assert.True(a.SlidingLayers.SequenceEqual(b.SlidingLayers), $"{name}: layer types differ");
        Assert.Equal(a.EosTokenIds, b.EosTokenIds);
    }

    /// <summary>The fixtures' config.json as transformers 5's save_pretrained writes it (bench/reference/family_specs.py, v5).</summary>
    private static readonly Dictionary<string, string> Transformers5 = new()
    {
        ["tiny-qwen3"] = """
            {"architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 2, "dtype": "bfloat16",
             "eos_token_id": 1, "head_dim": 32, "hidden_act": "silu", "hidden_size": 64, "initializer_range": 0.02, "intermediate_size": 128,
             "layer_types": ["full_attention", "full_attention", "full_attention"], "max_position_embeddings": 32768, "max_window_layers": 28,
             "model_type": "qwen3", "num_attention_heads": 4, "num_hidden_layers": 3, "num_key_value_heads": 2, "pad_token_id": 0,
             "rms_norm_eps": 1e-06, "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"}, "sliding_window": null,
             "tie_word_embeddings": true, "transformers_version": "5.17.0", "use_cache": true, "use_sliding_window": false, "vocab_size": 512}
            """,
        ["tiny-mistral-swa"] = """
            {"architectures": ["MistralForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 2, "dtype": "bfloat16", "eos_token_id": 1,
             "head_dim": null, "hidden_act": "silu", "hidden_size": 64, "initializer_range": 0.02, "intermediate_size": 128,
             "max_position_embeddings": 32768, "model_type": "mistral", "num_attention_heads": 4, "num_hidden_layers": 3,
             "num_key_value_heads": 2, "pad_token_id": 0, "rms_norm_eps": 1e-06, "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
             "sliding_window": 100, "tie_word_embeddings": false, "transformers_version": "5.17.0", "use_cache": true, "vocab_size": 512}
            """,
        ["tiny-qwen2-swa"] = """
            {"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 2, "dtype": "bfloat16", "eos_token_id": 1,
             "hidden_act": "silu", "hidden_size": 64, "initializer_range": 0.02, "intermediate_size": 128,
             "layer_types": ["full_attention", "full_attention", "sliding_attention", "sliding_attention"], "max_position_embeddings": 32768,
             "max_window_layers": 2, "model_type": "qwen2", "num_attention_heads": 4, "num_hidden_layers": 4, "num_key_value_heads": 2,
             "pad_token_id": 0, "rms_norm_eps": 1e-06, "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"},
             "sliding_window": 192, "tie_word_embeddings": false, "transformers_version": "5.17.0", "use_cache": true,
             "use_sliding_window": true, "vocab_size": 512}
            """,
        ["tiny-gemma2"] = """
            {"architectures": ["Gemma2ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "attn_logit_softcapping": 6.0,
             "bos_token_id": 2, "dtype": "bfloat16", "eos_token_id": 1, "final_logit_softcapping": 8.0, "head_dim": 32,
             "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 64, "initializer_range": 0.02, "intermediate_size": 128,
             "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"], "max_position_embeddings": 32768,
             "model_type": "gemma2", "num_attention_heads": 4, "num_hidden_layers": 4, "num_key_value_heads": 2, "pad_token_id": 0,
             "query_pre_attn_scalar": 48, "rms_norm_eps": 1e-06, "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
             "sliding_window": 64, "tie_word_embeddings": true, "transformers_version": "5.17.0", "use_cache": true, "vocab_size": 512}
            """,
        ["tiny-gemma3"] = """
            {"_sliding_window_pattern": 6, "architectures": ["Gemma3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
             "attn_logit_softcapping": null, "bos_token_id": 2, "dtype": "bfloat16", "eos_token_id": 1, "final_logit_softcapping": null,
             "head_dim": 32, "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 64, "initializer_range": 0.02, "intermediate_size": 128,
             "layer_types": ["sliding_attention", "sliding_attention", "sliding_attention", "sliding_attention", "sliding_attention",
                             "full_attention", "sliding_attention"],
             "max_position_embeddings": 32768, "model_type": "gemma3_text", "num_attention_heads": 4, "num_hidden_layers": 7,
             "num_key_value_heads": 2, "pad_token_id": 0, "query_pre_attn_scalar": 48, "rms_norm_eps": 1e-06,
             "rope_parameters": {"full_attention": {"factor": 8.0, "rope_theta": 1000000.0, "rope_type": "linear"},
                                 "sliding_attention": {"rope_theta": 10000.0, "rope_type": "default"}},
             "sliding_window": 128, "tie_word_embeddings": true, "transformers_version": "5.17.0", "use_bidirectional_attention": false,
             "use_cache": true, "vocab_size": 512}
            """,
    };
}
