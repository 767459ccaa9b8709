using System.Buffers.Binary;
using System.Diagnostics;
using System.Text.Json;
using LongCtx.Model;
using LongCtx.Tensors;

namespace LongCtx.Tests.Model;

public class ModelWeightsTests
{
    [Fact]
    public void TinyLlama3FixtureLoadsWithRightShapes()
    {
        var c = ModelConfig.Load(ModelFixtures.TinyLlama3);
        using var w = ModelWeights.Load(ModelFixtures.TinyLlama3, c);
        Assert.Equal([128256, 64], w.Embedding.Shape);
        Assert.Same(w.Embedding, w.LmHead);
        Assert.True(w.IsTied);
        Assert.Equal([64], w.FinalNorm.Shape);
        Assert.Equal(2, w.Layers.Length);
        foreach (var l in w.Layers)
        {
            Assert.Equal([64, 64], l.QProj.Shape);
            Assert.Equal([32, 64], l.KProj.Shape);
            Assert.Equal([32, 64], l.VProj.Shape);
            Assert.Equal([64, 64], l.OProj.Shape);
            Assert.Equal([192, 64], l.GateProj.Shape);
            Assert.Equal([192, 64], l.UpProj.Shape);
            Assert.Equal([64, 192], l.DownProj.Shape);
            Assert.Equal([64], l.InputNorm.Shape);
            Assert.Equal([64], l.PostAttentionNorm.Shape);
            Assert.Null(l.QBias);
            Assert.Null(l.KBias);
            Assert.Null(l.VBias);
            Assert.Null(l.OBias);
            Assert.Equal(DType.BF16, l.QProj.DType);
        }
        Assert.Equal("model.layers.1.mlp.down_proj.weight", w.Layers[1].DownProj.Name);
    }

    [Fact]
    public void TinyLlama3ValuesMatchAnIndependentRead()
    {
        string path = Path.Combine(ModelFixtures.TinyLlama3, "model.safetensors");
        // Parse the file by hand: header length, JSON header, then the bytes at the tensor's offsets.
        using var fs = File.OpenRead(path);
        var lenBytes = new byte[8];
        fs.ReadExactly(lenBytes);
        long headerLength = (long)BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
        var header = new byte[headerLength];
        fs.ReadExactly(header);
        using var doc = JsonDocument.Parse(header);

        var c = ModelConfig.Load(ModelFixtures.TinyLlama3);
        using var w = ModelWeights.Load(ModelFixtures.TinyLlama3, c);
        foreach (var (name, tensor) in new[] { ("model.embed_tokens.weight", w.Embedding), ("model.layers.1.self_attn.k_proj.weight", w.Layers[1].KProj), ("model.norm.weight", w.FinalNorm) })
        {
            var entry = doc.RootElement.GetProperty(name);
            Assert.Equal("BF16", entry.GetProperty("dtype").GetString());
            long begin = entry.GetProperty("data_offsets")[0].GetInt64();
            // First values, and a few deep inside (row 128000 is <|begin_of_text|> for the embedding).
            long[] indices = tensor.Length > 128000L * 64 ? [0, 1, 2, 3, 63, 128000L * 64 + 5, tensor.Length - 1] : [0, 1, 2, 3, tensor.Length - 1];
            foreach (long i in indices)
            {
                fs.Position = 8 + headerLength + begin + i * 2;
                var two = new byte[2];
                fs.ReadExactly(two);
                float expected = ModelFixtures.Bf16ToFloat(BinaryPrimitives.ReadUInt16LittleEndian(two));
                Assert.Equal(expected, ModelFixtures.ReadFloat(tensor, i));
            }
        }
        // Random-initialised matrices: small, not all zero.
        Assert.InRange(Math.Abs(ModelFixtures.ReadFloat(w.Embedding, 0)), 1e-6f, 1f);
    }

    private static ModelConfig Mini(string extra = "") =>
        ModelConfig.FromJson(ModelFixtures.MiniLlamaConfig.Replace("\"vocab_size\": 32", "\"vocab_size\": 32" + extra), "config.json");

    [Fact]
    public void DummyRoundTripsThroughOneFileAndShards()
    {
        var c = Mini();
        using var dummy = ModelWeights.Dummy(c, seed: 7);
        foreach (int shards in new[] { 1, 2, 3 })
        {
            using var dir = ModelFixtures.NewTempDir();
            ModelFixtures.WriteCheckpoint(dir.Path, ModelFixtures.MiniLlamaConfig, dummy, shards);
            var loadedConfig = ModelConfig.Load(dir.Path);
            using var loaded = ModelWeights.Load(dir.Path, loadedConfig);
            Assert.False(loaded.IsTied);
            var expected = ModelFixtures.AllTensors(dummy).ToList();
            var actual = ModelFixtures.AllTensors(loaded).ToList();
            Assert.Equal(expected.Select(t => t.Name), actual.Select(t => t.Name));
            for (int i = 0; i < expected.Count; i++)
                Assert.Equal(ModelFixtures.Bytes(expected[i]), ModelFixtures.Bytes(actual[i]));
        }
    }

    [Fact]
    public void WrongShapeNamesTheTensor()
    {
        var c = Mini();
        using var dummy = ModelWeights.Dummy(c, seed: 1);
        using var dir = ModelFixtures.NewTempDir();
        ModelFixtures.WriteCheckpoint(dir.Path, ModelFixtures.MiniLlamaConfig, dummy, edit: (name, t) =>
            name == "model.layers.0.self_attn.k_proj.weight"
                ? (name, t.DType, [4, 16], new byte[4 * 16 * 2])
                : (name, t.DType, t.Shape, ModelFixtures.Bytes(t)));
        var e = Assert.Throws<LongCtxException>(() => ModelWeights.Load(dir.Path, ModelConfig.Load(dir.Path)));
        Assert.Equal("model.safetensors: tensor model.layers.0.self_attn.k_proj.weight has shape [4, 16], expected [8, 16] from config.json", e.Message);
    }

    [Fact]
    public void MissingTensorIsNamed()
    {
        var c = Mini();
        using var dummy = ModelWeights.Dummy(c, seed: 1);
        using var dir = ModelFixtures.NewTempDir();
        ModelFixtures.WriteCheckpoint(dir.Path, ModelFixtures.MiniLlamaConfig, dummy, edit: (name, t) =>
            name == "lm_head.weight" ? null : (name, t.DType, t.Shape, ModelFixtures.Bytes(t)));
        var e = Assert.Throws<LongCtxException>(() => ModelWeights.Load(dir.Path, ModelConfig.Load(dir.Path)));
        Assert.Contains("tensor lm_head.weight is missing from the safetensors files", e.Message);
    }

    [Fact]
    public void ExtraLayersOrUnexpectedBiasesAreRefused()
    {
        // Weights of a 2-layer model under a config that says 1 layer.
        using var dummy = ModelWeights.Dummy(Mini(), seed: 1);
        using var dir = ModelFixtures.NewTempDir();
        string oneLayer = ModelFixtures.MiniLlamaConfig.Replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1");
        ModelFixtures.WriteCheckpoint(dir.Path, oneLayer, dummy);
        var e = Assert.Throws<LongCtxException>(() => ModelWeights.Load(dir.Path, ModelConfig.Load(dir.Path)));
        Assert.Contains("num_hidden_layers is 1", e.Message);

        // Weights with attention biases under a config without them.
        using var biased = ModelWeights.Dummy(Mini(", \"attention_bias\": true"), seed: 1);
        using var dir2 = ModelFixtures.NewTempDir();
        ModelFixtures.WriteCheckpoint(dir2.Path, ModelFixtures.MiniLlamaConfig, biased);
        e = Assert.Throws<LongCtxException>(() => ModelWeights.Load(dir2.Path, ModelConfig.Load(dir2.Path)));
        Assert.Contains("self_attn.q_proj.bias", e.Message);
    }

    [Fact]
    public void LlamaWithAttentionBiasLoadsAllFourBiases()
    {
        string json = ModelFixtures.MiniLlamaConfig.Replace("\"vocab_size\": 32", "\"vocab_size\": 32, \"attention_bias\": true");
        using var dummy = ModelWeights.Dummy(ModelConfig.FromJson(json, "c"), seed: 3);
        using var dir = ModelFixtures.NewTempDir();
        ModelFixtures.WriteCheckpoint(dir.Path, json, dummy);
        using var w = ModelWeights.Load(dir.Path, ModelConfig.Load(dir.Path));
        Assert.Equal([16], w.Layers[0].QBias!.Shape);
        Assert.Equal([8], w.Layers[0].KBias!.Shape);
        Assert.Equal([8], w.Layers[0].VBias!.Shape);
        Assert.Equal([16], w.Layers[0].OBias!.Shape);
    }

    [Fact]
    public void DummyHasConfigShapesAndIsDeterministic()
    {
        var c = ModelConfig.FromJson(ModelConfigTests.Qwen25Config
            .Replace("\"hidden_size\": 3584", "\"hidden_size\": 64").Replace("\"intermediate_size\": 18944", "\"intermediate_size\": 96")
            .Replace("\"num_attention_heads\": 28", "\"num_attention_heads\": 4").Replace("\"num_key_value_heads\": 4", "\"num_key_value_heads\": 2")
            .Replace("\"num_hidden_layers\": 28", "\"num_hidden_layers\": 3").Replace("\"vocab_size\": 152064", "\"vocab_size\": 3000"), "c");
        using var a = ModelWeights.Dummy(c, seed: 42);
        using var b = ModelWeights.Dummy(c, seed: 42);
        using var other = ModelWeights.Dummy(c, seed: 43);
        Assert.Equal(3, a.Layers.Length);
        Assert.Equal([3000, 64], a.Embedding.Shape);
        Assert.Equal([3000, 64], a.LmHead.Shape);
        Assert.NotSame(a.Embedding, a.LmHead);
        var l = a.Layers[2];
        Assert.Equal([64, 64], l.QProj.Shape);
        Assert.Equal([32, 64], l.KProj.Shape);
        Assert.Equal([64], l.QBias!.Shape);
        Assert.Equal([32], l.KBias!.Shape);
        Assert.Equal([32], l.VBias!.Shape);
        Assert.Null(l.OBias);
        Assert.Equal([96, 64], l.GateProj.Shape);
        Assert.Equal([64, 96], l.DownProj.Shape);

        var ta = ModelFixtures.AllTensors(a).ToList();
        var tb = ModelFixtures.AllTensors(b).ToList();
        var to = ModelFixtures.AllTensors(other).ToList();
        for (int i = 0; i < ta.Count; i++)
        {
            Assert.Equal(ModelFixtures.Bytes(ta[i]), ModelFixtures.Bytes(tb[i]));
            if (!ta[i].Name.Contains("norm")) Assert.NotEqual(ModelFixtures.Bytes(ta[i]), ModelFixtures.Bytes(to[i]));
        }
        Assert.All(Enumerable.Range(0, 64), i => Assert.Equal(1f, ModelFixtures.ReadFloat(l.InputNorm, i)));
        // Distinct tensors get distinct values even under one seed.
        Assert.NotEqual(ModelFixtures.Bytes(a.Layers[0].GateProj), ModelFixtures.Bytes(a.Layers[0].UpProj));
    }

    [Theory]
    [InlineData(DType.BF16)]
    [InlineData(DType.F16)]
    [InlineData(DType.F32)]
    public void DummyValuesLookLikeNormal002(DType dtype)
    {
        using var w = ModelWeights.Dummy(ModelConfig.Preset("tiny"), seed: 5, dtype);
        var t = w.Embedding;
        Assert.Equal(dtype, t.DType);
        Assert.True(w.IsTied);
        long n = 1 << 20;
        double sum = 0, sumSq = 0;
        for (long i = 0; i < n; i++)
        {
            double v = ModelFixtures.ReadFloat(t, i * 31 % t.Length);
            sum += v;
            sumSq += v * v;
        }
        double mean = sum / n, std = Math.Sqrt(sumSq / n - mean * mean);
        Assert.InRange(mean, -0.0005, 0.0005);
        Assert.InRange(std, 0.0195, 0.0205);
    }

    [Fact]
    public void DummyBuildsQuickly()
    {
        // ~167M parameters (tied llama3 vocabulary with hidden 1024): well under a second on 2 cores.
        var c = ModelConfig.Preset("tiny") with { HiddenSize = 1024, HeadDim = 128, IntermediateSize = 2048 };
        var sw = Stopwatch.StartNew();
        using var w = ModelWeights.Dummy(c, seed: 0);
        sw.Stop();
        Assert.InRange(c.ParameterCount, 1.6e8, 1.7e8);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"dummy fill took {sw.Elapsed}");
    }
}
