using LongCtx.Model;

namespace LongCtx.Tests.Model;

public class ModelConfigTests
{
    [Fact]
    public void TinyLlama3FixtureConfig()
    {
        var c = ModelConfig.Load(ModelFixtures.TinyLlama3);
        Assert.Equal("llama", c.ModelType);
        Assert.Equal(64, c.HiddenSize);
        Assert.Equal(192, c.IntermediateSize);
        Assert.Equal(2, c.NumLayers);
        Assert.Equal(4, c.NumHeads);
        Assert.Equal(2, c.NumKvHeads);
        Assert.Equal(16, c.HeadDim);
        Assert.Equal(128256, c.VocabSize);
        Assert.Equal(1e-5, c.RmsNormEps);
        Assert.Equal(131072, c.MaxPositionEmbeddings);
        Assert.True(c.TieWordEmbeddings);
        Assert.False(c.AttentionBias);
        Assert.False(c.MlpBias);
        Assert.Equal(128000, c.BosTokenId);
        Assert.Equal([128001], c.EosTokenIds);
        Assert.Null(c.SlidingWindow);
        Assert.Equal("llama3", c.Rope.RopeType);
        Assert.Equal(500000, c.Rope.Theta);
        Assert.Equal(8, c.Rope.Factor);
        Assert.Equal(1, c.Rope.LowFreqFactor);
        Assert.Equal(4, c.Rope.HighFreqFactor);
        Assert.Equal(8192, c.Rope.OriginalMaxPositionEmbeddings);
        // 128256*64 embedding (tied) + 2 layers * (q 64*64 + k,v 2*32*64 + o 64*64 + mlp 3*64*192 + 2 norms) + final norm
        Assert.Equal(128256L * 64 + 2 * (4096 + 4096 + 4096 + 3 * 12288 + 128) + 64, c.ParameterCount);
    }

    public const string Qwen25Config = """
        {
          "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
          "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 3584, "initializer_range": 0.02,
          "intermediate_size": 18944, "max_position_embeddings": 32768, "max_window_layers": 28,
          "model_type": "qwen2", "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4,
          "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 131072, "tie_word_embeddings": false,
          "torch_dtype": "bfloat16", "transformers_version": "4.43.1", "use_cache": true, "use_sliding_window": false,
          "vocab_size": 152064
        }
        """;

    [Fact]
    public void Qwen2ConfigHasAttentionBiasAndNoWindow()
    {
        var c = ModelConfig.FromJson(Qwen25Config, "qwen/config.json");
        Assert.Equal("qwen2", c.ModelType);
        Assert.True(c.AttentionBias);
        Assert.False(c.OProjBias);
        Assert.Equal(128, c.HeadDim);
        Assert.False(c.TieWordEmbeddings);
        Assert.Null(c.SlidingWindow);
        Assert.Equal("default", c.Rope.RopeType);
        Assert.Equal(1e6, c.Rope.Theta);
        Assert.Equal([151645], c.EosTokenIds);
        // Published as 7.61B parameters.
        Assert.InRange(c.ParameterCount, 7.60e9, 7.62e9);
        Assert.Equal(ModelConfig.Preset("qwen2.5-7b").ParameterCount, c.ParameterCount);
    }

    [Fact]
    public void Qwen2BiasIsOnEvenWhenConfigSaysAttentionBiasFalse()
    {
        var c = ModelConfig.FromJson(Qwen25Config.Replace("\"use_cache\": true", "\"attention_bias\": false"), "config.json");
        Assert.True(c.AttentionBias);
    }

    [Fact]
    public void MistralConfigLoadsWithSlidingWindow()
    {
        const string mistral = """
            {
              "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
              "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 32768,
              "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
              "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": false,
              "torch_dtype": "bfloat16", "transformers_version": "4.34.0.dev0", "use_cache": true, "vocab_size": 32000
            }
            """;
        var c = ModelConfig.FromJson(mistral, "config.json");
        Assert.Equal("mistral", c.ModelType);
        Assert.Equal(4096, c.SlidingWindow);
        Assert.False(c.AttentionBias);
        Assert.Equal(128, c.HeadDim);
        Assert.Equal(1, c.BosTokenId);
        Assert.InRange(c.ParameterCount, 7.24e9, 7.25e9); // Mistral 7B: 7.24B

        // v0.2+: sliding_window null → no window; a window as long as the context is no limit either.
        Assert.Null(ModelConfig.FromJson(mistral.Replace("\"sliding_window\": 4096", "\"sliding_window\": null"), "c").SlidingWindow);
        Assert.Null(ModelConfig.FromJson(mistral.Replace("\"sliding_window\": 4096", "\"sliding_window\": 32768"), "c").SlidingWindow);
    }

    [Fact]
    public void ExplicitHeadDimWins()
    {
        var c = ModelConfig.FromJson(ModelFixtures.MiniLlamaConfig.Replace("\"vocab_size\": 32", "\"vocab_size\": 32, \"head_dim\": 8"), "c");
        Assert.Equal(8, c.HeadDim);
        Assert.Equal(32, c.QDim);
    }

    [Fact]
    public void KvHeadsDefaultToHeads()
    {
        var c = ModelConfig.FromJson(ModelFixtures.MiniLlamaConfig.Replace("\"num_key_value_heads\": 2,", ""), "c");
        Assert.Equal(4, c.NumKvHeads);
        Assert.False(c.TieWordEmbeddings);
        Assert.Equal([2, 3], c.EosTokenIds);
    }

    [Fact]
    public void LlamaAttentionBiasIsRead()
    {
        var c = ModelConfig.FromJson(ModelFixtures.MiniLlamaConfig.Replace("\"vocab_size\": 32", "\"vocab_size\": 32, \"attention_bias\": true"), "c");
        Assert.True(c.AttentionBias);
        Assert.True(c.OProjBias);
    }

    [Theory]
    [InlineData("\"model_type\": \"llama\"", "\"model_type\": \"gpt2\"", "model_type 'gpt2' is not supported (supported: llama, mistral, qwen2, qwen3, gemma2, gemma3_text)")]
    [InlineData("\"hidden_size\": 16,", "", "required field 'hidden_size' is missing")]
    [InlineData("\"vocab_size\": 32", "\"vocab_size\": 32, \"mlp_bias\": true", "mlp_bias: true is not supported")]
    [InlineData("\"vocab_size\": 32", "\"vocab_size\": \"many\"", "field 'vocab_size' must be an integer")]
    [InlineData("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3", "not a multiple of num_key_value_heads 3")]
    [InlineData("\"vocab_size\": 32", "\"vocab_size\": 32, \"hidden_act\": \"gelu\"", "hidden_act 'gelu' is not supported")]
    [InlineData("\"vocab_size\": 32", "\"vocab_size\": 32, \"layer_types\": [\"full_attention\"]", "layer_types must be a list of 2 entries")]
    [InlineData("\"vocab_size\": 32", "\"vocab_size\": 32, \"layer_types\": [\"full_attention\", \"chunked_attention\"]", "layer_types[1] 'chunked_attention' is not supported")]
    [InlineData("\"model_type\": \"llama\"", "\"model_type\": \"gemma3\"", "only its text model, Gemma3ForCausalLM (model_type gemma3_text), is supported")]
    [InlineData("[\"LlamaForCausalLM\"]", "[\"LlamaForSequenceClassification\"]", "architecture 'LlamaForSequenceClassification' is not supported")]
    [InlineData("\"vocab_size\": 32", "\"vocab_size\": 32, \"partial_rotary_factor\": 0.5", "partial_rotary_factor 0.5 is not supported")]
    [InlineData("\"rope_theta\": 10000.0", "\"rope_theta\": 10000.0, \"rope_scaling\": {\"rope_type\": \"longrope\", \"factor\": 2}", "RoPE type 'longrope' (rope_scaling.rope_type) is not supported (supported: default, linear, dynamic, llama3, yarn)")]
    [InlineData("\"rope_theta\": 10000.0", "\"rope_theta\": 10000.0, \"rope_scaling\": {\"type\": \"linear\"}", "required field 'rope_scaling.factor' is missing")]
    [InlineData("\"vocab_size\": 32", "\"vocab_size\": 32, \"quantization_config\": {\"quant_method\": \"gptq\"}", "quantization_config quant_method 'gptq' is not supported")]
    public void BadConfigsGiveOneLineErrors(string from, string to, string expected)
    {
        string json = ModelFixtures.MiniLlamaConfig.Replace(from, to);
        Assert.NotEqual(ModelFixtures.MiniLlamaConfig, json);
        var e = Assert.Throws<LongCtxException>(() => ModelConfig.FromJson(json, "x/config.json"));
        Assert.Contains(expected, e.Message);
        Assert.StartsWith("x/config.json: ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void ModelTypeIsInferredFromArchitectureWhenMissing()
    {
        var c = ModelConfig.FromJson(ModelFixtures.MiniLlamaConfig.Replace("\"model_type\": \"llama\",", ""), "c");
        Assert.Equal("llama", c.ModelType);
        var e = Assert.Throws<LongCtxException>(() => ModelConfig.FromJson(
            ModelFixtures.MiniLlamaConfig.Replace("\"model_type\": \"llama\",", "").Replace("LlamaForCausalLM", "GPT2LMHeadModel"), "c"));
        Assert.Contains("architecture 'GPT2LMHeadModel' is not supported", e.Message);
    }

    [Fact]
    public void InvalidJsonNamesFileAndLine()
    {
        var e = Assert.Throws<LongCtxException>(() => ModelConfig.FromJson("{\n \"hidden_size\": 16,\n oops }", "m/config.json"));
        Assert.StartsWith("m/config.json: invalid JSON at line 3", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void MissingDirectoryAndMissingConfig()
    {
        var e = Assert.Throws<LongCtxException>(() => ModelConfig.Load("/nonexistent/model-dir"));
        Assert.Contains("/nonexistent/model-dir does not exist", e.Message);

        using var dir = ModelFixtures.NewTempDir();
        e = Assert.Throws<LongCtxException>(() => ModelConfig.Load(dir.Path));
        Assert.Contains("no config.json", e.Message);

        File.WriteAllText(dir.File("config.json"), "not json");
        e = Assert.Throws<LongCtxException>(() => ModelConfig.Load(dir.Path));
        Assert.Contains("config.json: invalid JSON", e.Message);
    }

    [Theory]
    [InlineData("llama3-8b", 8.02e9, 8.04e9)]
    [InlineData("llama3-8b-1m", 8.02e9, 8.04e9)]
    [InlineData("llama3-70b", 70.5e9, 70.6e9)]
    [InlineData("llama3-405b", 405.8e9, 405.9e9)]
    [InlineData("qwen2.5-7b", 7.61e9, 7.62e9)]
    [InlineData("qwen3-8b", 8.19e9, 8.20e9)]
    [InlineData("mistral-7b", 7.24e9, 7.25e9)]
    [InlineData("gemma2-9b", 9.24e9, 9.25e9)]
    [InlineData("gemma3-12b", 11.76e9, 11.78e9)] // the text model: Gemma 3 12B's 12.2B less its vision tower
    [InlineData("gemma3-27b", 27.0e9, 27.1e9)]
    public void PresetsHaveThePublishedSizes(string name, double min, double max)
    {
        var c = ModelConfig.Preset(name);
        Assert.InRange(c.ParameterCount, (long)min, (long)max);
    }

    [Fact]
    public void Llama3_8bPresetMatchesPublishedConfig()
    {
        var c = ModelConfig.Preset("llama3-8b");
        Assert.Equal((4096, 14336, 32, 32, 8, 128, 128256, 131072), (c.HiddenSize, c.IntermediateSize, c.NumLayers, c.NumHeads, c.NumKvHeads, c.HeadDim, c.VocabSize, c.MaxPositionEmbeddings));
        Assert.False(c.TieWordEmbeddings);
        Assert.Equal(RopeConfig.Llama3(500000, 8, 1, 4, 8192), c.Rope);

        var tiny = ModelConfig.Preset("tiny");
        Assert.Equal((256, 768, 4, 8, 2, 32, 128256), (tiny.HiddenSize, tiny.IntermediateSize, tiny.NumLayers, tiny.NumHeads, tiny.NumKvHeads, tiny.HeadDim, tiny.VocabSize));
        Assert.True(tiny.TieWordEmbeddings);
        Assert.Equal(500000, tiny.Rope.Theta);
    }

    [Fact]
    public void Gemma3_12bPresetIsItsPublishedTextConfig()
    {
        var c = ModelConfig.Preset("gemma3-12b");
        Assert.Equal((3840, 15360, 48, 16, 8, 256, 262208, 131072, 1024), (c.HiddenSize, c.IntermediateSize, c.NumLayers, c.NumHeads, c.NumKvHeads, c.HeadDim, c.VocabSize, c.MaxPositionEmbeddings, c.SlidingWindow));
        Assert.Equal(40, c.SlidingLayerCount); // five local layers to one global
        Assert.Equal(Enumerable.Range(0, 8).Select(i => 6 * i + 5), Enumerable.Range(0, 48).Where(l => !c.IsSliding(l)));
        Assert.Equal(new RopeConfig { RopeType = "linear", Theta = 1e6, Factor = 8 }, c.RopeOf(5));
        Assert.Equal(RopeConfig.Default(10000), c.RopeOf(0));
        Assert.Equal(1f / 16, c.AttentionOf(0).Scale);
    }

    [Fact]
    public void UnknownPresetListsKnownOnes()
    {
        var e = Assert.Throws<LongCtxException>(() => ModelConfig.Preset("gpt-5"));
        Assert.Contains("gpt-5", e.Message);
        foreach (var n in new[] { "llama3-8b", "llama3-70b", "llama3-405b", "qwen2.5-7b", "tiny" }) Assert.Contains(n, e.Message);
    }
}
