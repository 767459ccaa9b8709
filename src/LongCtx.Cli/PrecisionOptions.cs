using System.CommandLine;
using System.Text.Json.Nodes;
using LongCtx.Model;
using LongCtx.Tensors;

namespace LongCtx.Cli;

/// <summary>The number formats asked for: <c>--quantization fp8</c>, <c>--kv-cache-dtype</c>, <c>--attention-dtype</c> (issue #30).</summary>
internal sealed record PrecisionChoice(bool QuantizeFp8, KvCacheDType KvCache, bool Fp8Attention)
{
    /// <summary>The config the weights load with: the checkpoint's, or under <c>--quantization fp8</c> its online FP8 scheme.</summary>
    public ModelConfig Apply(ModelConfig config)
    {
        if (!QuantizeFp8) return config;
        if (config.Quantization is { } q)
            throw new LongCtxException($"--quantization fp8 quantises a bf16 checkpoint, but {config.Source} is already quantised ({q.Method}): leave --quantization out");
        return config with { Quantization = QuantizationConfig.OnlineFp8 };
    }
}

/// <summary>The options behind <see cref="PrecisionChoice"/>, shared by generate, chat, serve and bench.</summary>
internal sealed class PrecisionOptions
{
    public readonly Option<string?> Quantization = new("--quantization")
    {
        Description = "fp8: quantise a bf16 checkpoint's q/k/v/o/gate/up/down projections at load (e4m3 weights per output row, inputs per token, dynamic)",
    };
    public readonly Option<string> KvCacheDType = new("--kv-cache-dtype")
    {
        Description = "auto (fp8 where the checkpoint has a kv_cache_scheme, else the activation type), fp8 (e4m3 with the checkpoint's k_scale/v_scale, else 1) or bf16 (the activation type; float32 on the CPU)",
        DefaultValueFactory = _ => "auto",
    };
    public readonly Option<string> AttentionDType = new("--attention-dtype")
    {
        Description = "GPU prefill attention in bf16 (default) or fp8 (Hopper: e4m3 Q, K, V and P with per-tensor scales; approximate, its error is printed by --verbose and bench)",
        DefaultValueFactory = _ => "bf16",
    };

    public IEnumerable<Option> All => [Quantization, KvCacheDType, AttentionDType];

    public PrecisionChoice Read(ParseResult r, string device)
    {
        bool quantize = r.GetValue(Quantization) switch
        {
            null => false,
            "fp8" => true,
            var other => throw new LongCtxException($"--quantization {other} is unknown: fp8 is the one online quantisation"),
        };
        bool fp8Attention = r.GetValue(AttentionDType) switch
        {
            "bf16" or "bfloat16" or "auto" => false,
            "fp8" => device == Devices.Cuda ? true : throw new LongCtxException("--attention-dtype fp8 needs --device cuda (the CPU backend's attention is float32)"),
            var other => throw new LongCtxException($"--attention-dtype {other} is unknown: use bf16 or fp8"),
        };
        return new PrecisionChoice(quantize, KvCacheDTypes.Parse(r.GetValue(KvCacheDType)!), fp8Attention);
    }
}

/// <summary>The number formats a run used (weights, the projections' inputs, the KV cache, attention), as --json reports them.</summary>
internal static class PrecisionReport
{
    public static JsonObject Of(ModelWeights weights, string device, bool fp8Attention)
    {
        string activation = device == Devices.Cuda ? "bf16" : "f32";
        var projections = weights.Layers.SelectMany(l => new[] { l.QProj, l.KProj, l.VProj, l.OProj, l.GateProj, l.UpProj, l.DownProj }).ToList();
        var fp8 = projections.Where(p => p.Fp8 is not null).ToList();
        // The GPU holds float weights as bf16; the CPU reads them as stored.
        string stored = device == Devices.Cuda ? "bf16" : Name(weights.Embedding.DType);
        string Scaling(Quantization.Fp8WeightScaling s) => s switch
        {
            Quantization.Fp8WeightScaling.PerTensor => "per tensor",
            Quantization.Fp8WeightScaling.PerRow => "per row",
            _ => "per 128x128 block",
        };
        var o = new JsonObject
        {
            ["weights"] = fp8.Count == 0 ? stored
                : $"fp8_e4m3 {Scaling(fp8[0].Fp8!.WeightScaling)} ({weights.Config.Quantization!.Method}" +
                  (fp8.Count < projections.Count ? $"; {fp8.Count} of {projections.Count} projections, the rest {stored})" : ")"),
            ["activations"] = fp8.Count == 0 ? activation : $"{activation}; fp8_e4m3 inputs of the FP8 projections ({fp8[0].Fp8!.Activations})",
            ["kv_cache"] = weights.KvCache is { } kv ? $"fp8_e4m3 ({(kv.AllOnes ? "scale 1" : "the checkpoint's k_scale/v_scale")})" : activation,
            ["attention"] = fp8Attention ? $"fp8_e4m3 prefill, {activation} decode" : activation,
        };
        return o;
    }

    private static string Name(DType t) => t switch { DType.BF16 => "bf16", DType.F16 => "f16", DType.F32 => "f32", _ => t.ToString().ToLowerInvariant() };
}
