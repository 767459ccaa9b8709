using LongCtx.Model;

namespace LongCtx.Tests.Model;

/// <summary>
/// RoPE tables against the formulas of transformers' modeling_rope_utils, re-derived here independently of
/// the implementation (written from _compute_default/linear/llama3/yarn_parameters).
/// </summary>
public class RopeConfigTests
{
    private static double DefaultInvFreq(double theta, int dim, int i) => 1.0 / Math.Pow(theta, (2.0 * i) / dim);

    // transformers _compute_llama3_parameters, one frequency at a time.
    private static double Llama3InvFreq(double theta, int dim, int i, double factor, double low, double high, double oldContext)
    {
        double f = DefaultInvFreq(theta, dim, i);
        double wavelen = 2 * Math.PI / f;
        double lowFreqWavelen = oldContext / low, highFreqWavelen = oldContext / high;
        double scaled = wavelen > lowFreqWavelen ? f / factor : f;
        bool medium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
        if (!medium) return scaled;
        double smooth = (oldContext / wavelen - low) / (high - low);
        return (1 - smooth) * scaled / factor + smooth * scaled;
    }

    // transformers _compute_yarn_parameters with truncate=True, beta_fast 32, beta_slow 1.
    private static double YarnInvFreq(double theta, int dim, int i, double factor, int original)
    {
        double CorrectionDim(double rotations) => dim * Math.Log(original / (rotations * 2 * Math.PI)) / (2 * Math.Log(theta));
        double lowDim = Math.Max(Math.Floor(CorrectionDim(32)), 0);
        double highDim = Math.Min(Math.Ceiling(CorrectionDim(1)), dim - 1);
        double posFreq = Math.Pow(theta, 2.0 * i / dim);
        double ramp = Math.Clamp((i - lowDim) / (highDim - lowDim), 0, 1);
        double extrapolationFactor = 1 - ramp;
        return 1 / (factor * posFreq) * (1 - extrapolationFactor) + 1 / posFreq * extrapolationFactor;
    }

    [Fact]
    public void TinyLlama3FixtureTableMatchesFormula()
    {
        var c = ModelConfig.Load(ModelFixtures.TinyLlama3);
        var table = c.Rope.BuildTable(c.HeadDim);
        Assert.Equal(8, table.InvFreq.Length);
        Assert.Equal(1f, table.AttentionScale);
        for (int i = 0; i < 8; i++)
            Assert.Equal((float)Llama3InvFreq(500000, 16, i, 8, 1, 4, 8192), table.InvFreq[i]);
    }

    [Fact]
    public void Llama3_8bTableCoversAllThreeBands()
    {
        var table = ModelConfig.Preset("llama3-8b").Rope.BuildTable(128);
        Assert.Equal(64, table.InvFreq.Length);
        for (int i = 0; i < 64; i++)
            Assert.Equal((float)Llama3InvFreq(500000, 128, i, 8, 1, 4, 8192), table.InvFreq[i]);
        // High frequencies untouched, low ones divided by 8, and some in between are smoothed.
        Assert.Equal(1f, table.InvFreq[0]);
        Assert.Equal((float)(DefaultInvFreq(500000, 128, 63) / 8), table.InvFreq[63]);
        int medium = Enumerable.Range(0, 64).Count(i =>
        {
            double f = DefaultInvFreq(500000, 128, i);
            return table.InvFreq[i] != (float)f && table.InvFreq[i] != (float)(f / 8);
        });
        Assert.InRange(medium, 1, 20);
    }

    [Fact]
    public void DefaultAndLinear()
    {
        var d = RopeConfig.Default(10000).BuildTable(64);
        Assert.Equal(1f, d.InvFreq[0]);
        Assert.Equal((float)Math.Pow(10000, -10.0 / 64), d.InvFreq[5]);

        var c = ModelConfig.FromJson(ModelFixtures.MiniLlamaConfig.Replace("\"rope_theta\": 10000.0",
            "\"rope_theta\": 10000.0, \"rope_scaling\": {\"type\": \"linear\", \"factor\": 4.0}"), "c");
        Assert.Equal("linear", c.Rope.RopeType);
        var t = c.Rope.BuildTable(64);
        foreach (int i in new[] { 0, 7, 31 })
            Assert.Equal((float)(DefaultInvFreq(10000, 64, i) / 4), t.InvFreq[i]);
        Assert.Equal(1f, t.AttentionScale);
    }

    [Fact]
    public void YarnAsQwen25PublishesIt()
    {
        // Qwen2.5's documented long-context setting, transformers-4 style.
        string json = ModelConfigTests.Qwen25Config.Replace("\"rope_theta\": 1000000.0",
            "\"rope_theta\": 1000000.0, \"rope_scaling\": {\"factor\": 4.0, \"original_max_position_embeddings\": 32768, \"type\": \"yarn\"}");
        var c = ModelConfig.FromJson(json, "c");
        Assert.Equal("yarn", c.Rope.RopeType);
        var t = c.Rope.BuildTable(c.HeadDim);
        for (int i = 0; i < 64; i++)
            Assert.Equal((float)YarnInvFreq(1e6, 128, i, 4, 32768), t.InvFreq[i], 1e-7f * Math.Max(t.InvFreq[i], 1e-30f) + 1e-12f);
        Assert.Equal((float)(0.1 * Math.Log(4) + 1), t.AttentionScale);
        // Ends of the ramp: the fastest dimension extrapolates, the slowest interpolates.
        Assert.Equal(1f, t.InvFreq[0]);
        Assert.Equal((float)(DefaultInvFreq(1e6, 128, 63) / 4), t.InvFreq[63]);
    }

    [Fact]
    public void YarnOptions()
    {
        string Config(string rope) => ModelFixtures.MiniLlamaConfig.Replace("\"rope_theta\": 10000.0", "\"rope_parameters\": " + rope);
        var explicitFactor = ModelConfig.FromJson(Config("""{"rope_type": "yarn", "rope_theta": 10000.0, "factor": 2.0, "attention_factor": 1.5}"""), "c");
        Assert.Equal(1.5f, explicitFactor.Rope.BuildTable(16).AttentionScale);
        Assert.Equal(256, explicitFactor.Rope.OriginalMaxPositionEmbeddings); // defaults to max_position_embeddings

        var mscale = ModelConfig.FromJson(Config("""{"rope_type": "yarn", "rope_theta": 10000.0, "factor": 40.0, "mscale": 1.0, "mscale_all_dim": 1.0, "original_max_position_embeddings": 64}"""), "c");
        Assert.Equal(1f, mscale.Rope.BuildTable(16).AttentionScale);

        var untruncated = ModelConfig.FromJson(Config("""{"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "truncate": false, "original_max_position_embeddings": 64}"""), "c");
        Assert.False(untruncated.Rope.Truncate);
        var truncated = untruncated with { Rope = untruncated.Rope with { Truncate = true } };
        Assert.NotEqual(truncated.Rope.BuildTable(16).InvFreq, untruncated.Rope.BuildTable(16).InvFreq);
    }

    [Fact]
    public void Transformers4And5SpellingsGiveTheSameTable()
    {
        const string v4 = """
            { "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
              "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 131072,
              "rope_theta": 500000.0,
              "rope_scaling": { "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 8192, "rope_type": "llama3" } }
            """;
        const string v5 = """
            { "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
              "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 131072,
              "rope_parameters": { "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                                   "high_freq_factor": 4.0, "original_max_position_embeddings": 8192 } }
            """;
        var a = ModelConfig.FromJson(v4, "v4");
        var b = ModelConfig.FromJson(v5, "v5");
        Assert.Equal(a.Rope, b.Rope);
        Assert.Equal(a.Rope.BuildTable(128).InvFreq, b.Rope.BuildTable(128).InvFreq);
        Assert.Equal(ModelConfig.Preset("llama3-8b").Rope.BuildTable(128).InvFreq, a.Rope.BuildTable(128).InvFreq);

        // rope_scaling: null and a missing rope_scaling both mean default RoPE with the top-level theta.
        string nullScaling = v4.Replace("\"rope_scaling\": {", "\"rope_scaling\": null, \"x\": {");
        var n = ModelConfig.FromJson(nullScaling, "n");
        Assert.Equal(RopeConfig.Default(500000), n.Rope);
        var v5Default = ModelConfig.FromJson(v5.Replace("\"rope_type\": \"llama3\"", "\"rope_type\": \"default\""), "d");
        Assert.Equal(n.Rope.BuildTable(128).InvFreq, v5Default.Rope.BuildTable(128).InvFreq);
    }

    [Fact]
    public void DynamicIsDefaultWithinTheContext()
    {
        var c = ModelConfig.FromJson(ModelFixtures.MiniLlamaConfig.Replace("\"rope_theta\": 10000.0",
            "\"rope_theta\": 10000.0, \"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2.0}"), "c");
        Assert.Equal("dynamic", c.Rope.RopeType);
        Assert.Equal(RopeConfig.Default(10000).BuildTable(4).InvFreq, c.Rope.BuildTable(4).InvFreq);
    }

    [Fact]
    public void UnknownTypeInV5SpellingIsNamed()
    {
        var e = Assert.Throws<LongCtxException>(() => ModelConfig.FromJson(ModelFixtures.MiniLlamaConfig.Replace("\"rope_theta\": 10000.0",
            "\"rope_parameters\": {\"rope_type\": \"su\", \"rope_theta\": 10000.0}"), "cfg.json"));
        Assert.Equal("cfg.json: RoPE type 'su' (rope_parameters.rope_type) is not supported (supported: default, linear, dynamic, llama3, yarn)", e.Message);
    }
}
