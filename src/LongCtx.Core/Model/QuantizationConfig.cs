using System.Text.RegularExpressions;
using LongCtx.Quantization;

namespace LongCtx.Model;

/// <summary>How the names of a format's exclusion list match a module (bench/reference/FP8.md).</summary>
public enum ModuleMatch
{
    /// <summary>compressed-tensors' <c>ignore</c>: the whole name, or a <c>re:</c> pattern matched from its start.</summary>
    NameOrRegex,
    /// <summary>transformers' <c>modules_to_not_convert</c> (fbgemm_fp8, fp8): any entry contained in the name.</summary>
    Substring,
}

/// <summary>
/// The FP8 scheme of a model: config.json's <c>quantization_config</c> (compressed-tensors float-quantized,
/// fbgemm_fp8, fp8 with 128 × 128 blocks; <see cref="QuantizationConfigParser"/>) or <c>--quantization fp8</c>
/// (<see cref="Online"/>). Which q/k/v/o/gate/up/down projections are FP8, how their weights are scaled and how
/// their inputs are quantised. Embeddings, norms, lm_head and attention are never quantised.
/// </summary>
public sealed record QuantizationConfig
{
    /// <summary>config.json's quant_method, or "fp8 (online)".</summary>
    public required string Method { get; init; }
    public required Fp8WeightScaling Weights { get; init; }
    public required Fp8ActivationScaling Activations { get; init; }
    /// <summary>fbgemm_fp8's activation_scale_ub (0 for the other schemes).</summary>
    public float ActivationBound { get; init; }
    /// <summary>The codes are made at load from a float checkpoint (per output row), not read from it.</summary>
    public bool Online { get; init; }
    /// <summary>compressed-tensors' kv_cache_scheme: the checkpoint has self_attn.k_scale and v_scale per layer for an FP8 KV cache.</summary>
    public bool KvCacheScales { get; init; }
    public IReadOnlyList<string> Ignore { get; init; } = [];
    public ModuleMatch IgnoreMatch { get; init; }

    /// <summary><c>--quantization fp8</c>: every projection per output row, inputs dynamic per token (vLLM's, with per-row weights).</summary>
    public static QuantizationConfig OnlineFp8 => new()
    {
        Method = "fp8 (online)", Weights = Fp8WeightScaling.PerRow, Activations = Fp8ActivationScaling.PerToken, Online = true,
    };

    /// <summary>Whether the projection <paramref name="module"/> (e.g. model.layers.0.self_attn.q_proj) is FP8.</summary>
    public bool Quantizes(string module)
    {
        foreach (string entry in Ignore)
        {
            bool hit = IgnoreMatch == ModuleMatch.Substring
                ? module.Contains(entry, StringComparison.Ordinal)
                : entry.StartsWith("re:", StringComparison.Ordinal) ? Regex.IsMatch(module, $"^(?:{entry[3..]})") : entry == module;
            if (hit) return false;
        }
        return true;
    }

    /// <summary>The scale tensor name next to X.weight: weight_scale, or weight_scale_inv for the block format.</summary>
    public string WeightScaleSuffix => Method == "fp8" ? "weight_scale_inv" : "weight_scale";

    /// <summary>For reports: the weights' and the inputs' scaling.</summary>
    public string Describe() =>
        $"{Method}: weights fp8 e4m3 {Weights switch { Fp8WeightScaling.PerTensor => "per tensor", Fp8WeightScaling.PerRow => "per row", _ => "per 128x128 block" }}, " +
        $"inputs {new Fp8Activations(Activations, ActivationBound)}";
}
