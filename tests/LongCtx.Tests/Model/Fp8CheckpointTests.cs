using System.Text.Json;
using System.Text.Json.Nodes;
using LongCtx.Model;
using LongCtx.Quantization;
using LongCtx.Tests.Quantization;

namespace LongCtx.Tests.Model;

/// <summary>
/// The FP8 checkpoint formats as config.json describes them, and bad FP8 input: the fixtures' broken checkpoints
/// (bench/reference/make_fp8_fixtures.py, each with expect.json naming the tensor), configs of other schemes, and
/// checkpoints whose tensors disagree with their config. Each is one line naming the thing.
/// </summary>
public class Fp8CheckpointTests
{
    [Theory]
    [InlineData("tiny-llama-fp8-ct-channel", "compressed-tensors", Fp8WeightScaling.PerRow, Fp8ActivationScaling.PerToken, false)]
    [InlineData("tiny-llama-fp8-ct-tensor", "compressed-tensors", Fp8WeightScaling.PerTensor, Fp8ActivationScaling.Static, false)]
    [InlineData("tiny-llama-fp8-ct-kv", "compressed-tensors", Fp8WeightScaling.PerRow, Fp8ActivationScaling.PerToken, true)]
    [InlineData("tiny-llama-fp8-fbgemm", "fbgemm_fp8", Fp8WeightScaling.PerRow, Fp8ActivationScaling.PerTokenBounded, false)]
    [InlineData("tiny-llama-fp8-block", "fp8", Fp8WeightScaling.Block, Fp8ActivationScaling.PerTokenGroup, false)]
    public void ReadsEachFormatsScheme(string name, string method, Fp8WeightScaling weights, Fp8ActivationScaling inputs, bool kv)
    {
        var dir = Path.Combine(Fp8Fixture.Root, name);
        var c = ModelConfig.Load(dir).Quantization!;
        Assert.Equal((method, weights, inputs, kv), (c.Method, c.Weights, c.Activations, c.KvCacheScales));
        using var w = ModelWeights.Load(dir, ModelConfig.Load(dir));
        var quantized = w.Layers.SelectMany(l => new[] { l.QProj, l.KProj, l.VProj, l.OProj, l.GateProj, l.UpProj, l.DownProj }).ToList();
        // fbgemm's modules_to_not_convert leaves layer 0's attention and layer 1's down_proj in bf16.
        int expected = name.EndsWith("fbgemm", StringComparison.Ordinal) ? 14 - 5 : 14;
        Assert.Equal(expected, quantized.Count(t => t.Fp8 is not null));
        Assert.All(quantized.Where(t => t.Fp8 is null), t => Assert.NotEqual(Tensors.DType.F8E4M3, t.DType));
        Assert.Equal(kv, w.KvCache is not null);
        if (name.EndsWith("fbgemm", StringComparison.Ordinal))
            Assert.Equal(15f, w.Layers[1].QProj.Fp8!.Activations.Parameter); // the checkpoint's activation_scale_ub
        if (name.EndsWith("ct-tensor", StringComparison.Ordinal))
            Assert.True(w.Layers[0].QProj.Fp8!.Activations.Parameter > 0); // input_scale read
    }

    [Fact]
    public void KvCacheDTypeChoosesTheCache()
    {
        var kvDir = Path.Combine(Fp8Fixture.Root, "tiny-llama-fp8-ct-kv");
        var plain = Path.Combine(Fp8Fixture.Root, "tiny-llama-fp8-ct-channel");
        using (var w = ModelWeights.Load(kvDir, ModelConfig.Load(kvDir), KvCacheDType.Activation)) Assert.Null(w.KvCache);
        using (var w = ModelWeights.Load(plain, ModelConfig.Load(plain))) Assert.Null(w.KvCache);
        using (var w = ModelWeights.Load(plain, ModelConfig.Load(plain), KvCacheDType.Fp8)) Assert.True(w.KvCache!.AllOnes);
        using (var w = ModelWeights.Load(kvDir, ModelConfig.Load(kvDir), KvCacheDType.Fp8))
        {
            Assert.False(w.KvCache!.AllOnes);
            Assert.All(w.KvCache.Keys.Concat(w.KvCache.Values), s => Assert.InRange(s, 1e-3f, 1f)); // bf16(amax / 448) of K and V
        }
    }

    public static TheoryData<string> BadCases() => ["missing-scale", "scale-shape", "block-size", "no-quantization-config"];

    [Theory]
    [MemberData(nameof(BadCases))]
    public void BadCheckpointsNameTheTensor(string name)
    {
        var dir = Path.Combine(Fp8Fixture.Root, "bad", name);
        using var expect = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "expect.json")));
        string tensor = expect.RootElement.GetProperty("tensor").GetString()!;
        var e = Assert.Throws<LongCtxException>(() => ModelWeights.Load(dir, ModelConfig.Load(dir)).Dispose());
        Assert.Contains($"tensor {tensor} ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData("\"quant_method\": \"compressed-tensors\"", "\"quant_method\": \"awq\"", "quant_method 'awq' is not supported")]
    [InlineData("\"strategy\": \"channel\"", "\"strategy\": \"group\"", "weights.strategy 'group' is not supported")]
    [InlineData("\"strategy\": \"token\"", "\"strategy\": \"tensor\"", "input_activations.strategy 'tensor' with dynamic: true is not supported")]
    [InlineData("\"num_bits\": 8,\n          \"observer\": \"minmax\"", "\"num_bits\": 4,\n          \"observer\": \"minmax\"", "is 4-bit float, not FP8")]
    [InlineData("\"format\": \"float-quantized\",\n    \"global", "\"format\": \"pack-quantized\",\n    \"global", "format 'pack-quantized' is not supported")]
    public void OtherSchemesAreRefusedByName(string from, string to, string expected)
    {
        var json = File.ReadAllText(Path.Combine(Fp8Fixture.Root, "tiny-llama-fp8-ct-channel", "config.json"));
        Assert.Contains(from, json);
        var e = Assert.Throws<LongCtxException>(() => ModelConfig.FromJson(json.Replace(from, to), "x/config.json"));
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData("{\"quant_method\": \"fp8\", \"weight_block_size\": [64, 64]}", "weight_block_size [64, 64] is not supported (only [128, 128])")]
    [InlineData("{\"quant_method\": \"fp8\"}", "without weight_block_size")]
    [InlineData("{\"quant_method\": \"fp8\", \"fmt\": \"e5m2\", \"weight_block_size\": [128, 128]}", "fmt 'e5m2' is not supported")]
    [InlineData("{\"quant_method\": \"fp8\", \"activation_scheme\": \"static\", \"weight_block_size\": [128, 128]}", "activation_scheme 'static' is not supported")]
    [InlineData("{\"quant_method\": \"fbgemm_fp8\", \"activation_scale_ub\": -1}", "activation_scale_ub must be positive")]
    [InlineData("{\"quant_method\": \"modelopt\", \"quant_algo\": \"FP8\"}", "quant_method 'modelopt' is not supported")]
    [InlineData("{\"bits\": 4}", "quantization_config has no quant_method")]
    public void BadQuantizationConfigs(string config, string expected)
    {
        string json = ModelFixtures.MiniLlamaConfig.Replace("\"vocab_size\": 32", $"\"vocab_size\": 32, \"quantization_config\": {config}");
        var e = Assert.Throws<LongCtxException>(() => ModelConfig.FromJson(json, "x/config.json"));
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void ModulesToNotConvertMatchBySubstringAndIgnoreByNameOrRegex()
    {
        var fbgemm = new QuantizationConfig
        {
            Method = "fbgemm_fp8", Weights = Fp8WeightScaling.PerRow, Activations = Fp8ActivationScaling.PerTokenBounded,
            Ignore = ["self_attn"], IgnoreMatch = ModuleMatch.Substring
        };
        Assert.False(fbgemm.Quantizes("model.layers.3.self_attn.q_proj"));
        Assert.True(fbgemm.Quantizes("model.layers.3.mlp.up_proj"));
        var ct = fbgemm with { Ignore = ["model.layers.0.mlp.up_proj", "re:.*self_attn\\.(q|k)_proj"], IgnoreMatch = ModuleMatch.NameOrRegex };
        Assert.False(ct.Quantizes("model.layers.0.mlp.up_proj"));
        Assert.True(ct.Quantizes("model.layers.10.mlp.up_proj"));
        Assert.False(ct.Quantizes("model.layers.7.self_attn.k_proj"));
        Assert.True(ct.Quantizes("model.layers.7.self_attn.v_proj"));
    }

    /// <summary>A copy of ct-channel with config.json edited.</summary>
    private static ModelFixtures.TempDir WithConfig(string name, Action<JsonObject> edit)
    {
        var dir = ModelFixtures.NewTempDir();
        string source = Path.Combine(Fp8Fixture.Root, name);
        File.Copy(Path.Combine(source, "model.safetensors"), dir.File("model.safetensors"));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!.AsObject();
        edit(config);
        File.WriteAllText(dir.File("config.json"), config.ToJsonString());
        return dir;
    }

    [Fact]
    public void AnFp8WeightTheConfigLeavesUnquantisedIsRefused()
    {
        using var dir = WithConfig("tiny-llama-fp8-ct-channel", c => c["quantization_config"]!["ignore"]!.AsArray().Add("model.layers.1.mlp.up_proj"));
        var e = Assert.Throws<LongCtxException>(() => ModelWeights.Load(dir.Path, ModelConfig.Load(dir.Path)).Dispose());
        Assert.Contains("tensor model.layers.1.mlp.up_proj.weight is F8_E4M3 but quantization_config (compressed-tensors) leaves model.layers.1.mlp.up_proj unquantised", e.Message);
    }

    [Fact]
    public void ABf16WeightTheConfigQuantisesIsRefused()
    {
        using var dir = WithConfig("tiny-llama-fp8-fbgemm", c => c["quantization_config"]!["modules_to_not_convert"] = new JsonArray("lm_head"));
        var e = Assert.Throws<LongCtxException>(() => ModelWeights.Load(dir.Path, ModelConfig.Load(dir.Path)).Dispose());
        Assert.Contains("tensor model.layers.0.self_attn.q_proj.weight is BF16 but quantization_config (fbgemm_fp8) makes model.layers.0.self_attn.q_proj FP8", e.Message);
    }

    [Fact]
    public void ScalesTheConfigDoesNotCallForAreRefused()
    {
        // ct-kv's k_scale / v_scale under a config without kv_cache_scheme.
        using var dir = WithConfig("tiny-llama-fp8-ct-kv", c => c["quantization_config"]!["kv_cache_scheme"] = null);
        var e = Assert.Throws<LongCtxException>(() => ModelWeights.Load(dir.Path, ModelConfig.Load(dir.Path)).Dispose());
        Assert.Contains("has tensor model.layers.", e.Message);
        Assert.Contains("_scale but config.json (compressed-tensors) does not call for it", e.Message);
    }

    [Fact]
    public void OnlineQuantisationOfAnFp8CheckpointIsRefused()
    {
        var dir = Path.Combine(Fp8Fixture.Root, "tiny-llama-fp8-block");
        var config = ModelConfig.Load(dir) with { Quantization = QuantizationConfig.OnlineFp8 };
        var e = Assert.Throws<SettingException>(() => ModelWeights.Load(dir, config).Dispose());
        Assert.Equal(Setting.Quantization, e.Setting);
        Assert.Contains("quantises a bf16 checkpoint, but model.safetensors: tensor model.layers.0.self_attn.q_proj.weight is already F8_E4M3", e.Message);
    }
}
