using System.Text.Json;
using LongCtx.Quantization;

namespace LongCtx.Model;

/// <summary>
/// config.json's <c>quantization_config</c> → <see cref="QuantizationConfig"/>: the three FP8 formats of issue #30 as
/// llm-compressor, Meta's fbgemm releases and DeepSeek / Qwen3-FP8 write them. Anything else is refused in one line
/// naming quant_method (or the field that makes it another scheme), since running it as bf16 would be silently wrong.
/// </summary>
internal static class QuantizationConfigParser
{
    private const string Supported = "FP8 checkpoints of compressed-tensors (format float-quantized), fbgemm_fp8 and fp8 (weight_block_size [128, 128]) are";

    public static QuantizationConfig? Parse(ConfigJson root)
    {
        if (root.OptionalObject("quantization_config") is not { } q) return null;
        string method = q.OptionalString("quant_method") ?? throw q.Error($"quantization_config has no quant_method; {Supported} supported");
        return method switch
        {
            "compressed-tensors" => CompressedTensors(q),
            "fbgemm_fp8" => Fbgemm(q),
            "fp8" => Block(q),
            _ => throw q.Error($"quantization_config quant_method '{method}' is not supported; {Supported}"),
        };
    }

    private static QuantizationConfig Fbgemm(ConfigJson q)
    {
        double ub = q.OptionalDouble("activation_scale_ub") ?? 1200.0; // transformers' FbgemmFp8Config default
        if (!(ub > 0)) throw q.Error($"quantization_config.activation_scale_ub must be positive, got {ub}");
        return new QuantizationConfig
        {
            Method = "fbgemm_fp8", Weights = Fp8WeightScaling.PerRow, Activations = Fp8ActivationScaling.PerTokenBounded, ActivationBound = (float)ub,
            Ignore = Strings(q, "modules_to_not_convert"), IgnoreMatch = ModuleMatch.Substring,
        };
    }

    private static QuantizationConfig Block(ConfigJson q)
    {
        string fmt = q.OptionalString("fmt") ?? "e4m3";
        if (fmt != "e4m3") throw q.Error($"quant_method fp8 with fmt '{fmt}' is not supported (e4m3 only)");
        string scheme = q.OptionalString("activation_scheme") ?? "dynamic";
        if (scheme != "dynamic") throw q.Error($"quant_method fp8 with activation_scheme '{scheme}' is not supported (dynamic only)");
        if (!q.TryGet("weight_block_size", out var block))
            throw q.Error("quant_method fp8 without weight_block_size (per-tensor scales) is not supported; the block form, weight_block_size [128, 128], is");
        if (block.ValueKind != JsonValueKind.Array || block.GetArrayLength() != 2 || block.EnumerateArray().Any(e => !e.TryGetInt32(out int b) || b != Fp8Linear.BlockSize))
            throw q.Error($"quant_method fp8 with weight_block_size {block.GetRawText()} is not supported (only [128, 128])");
        var ignore = Strings(q, "modules_to_not_convert").Concat(Strings(q, "ignored_layers")).ToArray();
        return new QuantizationConfig
        {
            Method = "fp8", Weights = Fp8WeightScaling.Block, Activations = Fp8ActivationScaling.PerTokenGroup,
            Ignore = ignore, IgnoreMatch = ModuleMatch.Substring,
        };
    }

    private static QuantizationConfig CompressedTensors(ConfigJson q)
    {
        string format = q.OptionalString("format") ?? "float-quantized";
        if (format != "float-quantized")
            throw q.Error($"quant_method compressed-tensors with format '{format}' is not supported; {Supported}");
        var groups = q.OptionalObject("config_groups") ?? throw q.Error("compressed-tensors quantization_config has no config_groups");
        var names = groups.PropertyNames().ToList();
        if (names.Count != 1) throw q.Error($"compressed-tensors config_groups has {names.Count} groups ({string.Join(", ", names)}); one group targeting Linear is supported");
        var group = groups.OptionalObject(names[0]) ?? throw q.Error($"compressed-tensors config_groups.{names[0]} is empty");
        if (group.OptionalString("format") is { } f && f != "float-quantized")
            throw q.Error($"quant_method compressed-tensors with format '{f}' in {group.Prefix} is not supported; {Supported}");
        var targets = Strings(group, "targets");
        if (targets.Count != 1 || targets[0] != "Linear")
            throw q.Error($"compressed-tensors {group.FieldName("targets")} [{string.Join(", ", targets)}] is not supported (only [Linear])");
        if (group.OptionalObject("output_activations") is not null)
            throw q.Error($"compressed-tensors {group.FieldName("output_activations")} is not supported");

        var weights = group.OptionalObject("weights") ?? throw q.Error($"compressed-tensors {group.FieldName("weights")} is missing");
        Fp8(weights);
        if (weights.OptionalBool("dynamic") == true) throw q.Error($"compressed-tensors {weights.FieldName("dynamic")}: true is not supported for weights");
        string weightStrategy = weights.OptionalString("strategy") ?? "";
        var weightScaling = weightStrategy switch
        {
            "channel" => Fp8WeightScaling.PerRow,
            "tensor" => Fp8WeightScaling.PerTensor,
            "block" when BlockStructure(weights) => Fp8WeightScaling.Block,
            _ => throw q.Error($"compressed-tensors {weights.FieldName("strategy")} '{weightStrategy}' is not supported (channel, tensor or block [128, 128])"),
        };

        var inputs = group.OptionalObject("input_activations")
            ?? throw q.Error($"compressed-tensors without {group.FieldName("input_activations")} (FP8 weights with bf16 inputs) is not supported; W8A8 FP8 is");
        Fp8(inputs);
        string inputStrategy = inputs.OptionalString("strategy") ?? "";
        bool dynamic = inputs.OptionalBool("dynamic") ?? false;
        var activations = (inputStrategy, dynamic) switch
        {
            ("token", true) => Fp8ActivationScaling.PerToken,
            ("tensor", false) => Fp8ActivationScaling.Static,
            ("group", true) when inputs.OptionalInt("group_size") == Fp8Activations.Group => Fp8ActivationScaling.PerTokenGroup,
            _ => throw q.Error($"compressed-tensors {inputs.FieldName("strategy")} '{inputStrategy}' with dynamic: {(dynamic ? "true" : "false")} is not supported " +
                "(token dynamic, tensor static, or group of 128 dynamic)"),
        };
        if (weightScaling == Fp8WeightScaling.Block != (activations == Fp8ActivationScaling.PerTokenGroup))
            throw q.Error("compressed-tensors block weights go with inputs quantised per group of 128, and only they");

        bool kv = false;
        if (q.OptionalObject("kv_cache_scheme") is { } k)
        {
            Fp8(k);
            if (k.OptionalString("strategy") != "tensor" || k.OptionalBool("dynamic") == true)
                throw q.Error($"compressed-tensors {k.Prefix} must be static per tensor (strategy tensor, dynamic false): self_attn.k_scale and v_scale");
            kv = true;
        }
        return new QuantizationConfig
        {
            Method = "compressed-tensors", Weights = weightScaling, Activations = activations, KvCacheScales = kv,
            Ignore = Strings(q, "ignore"), IgnoreMatch = ModuleMatch.NameOrRegex,
        };
    }

    // Every quantisation args object of a float-quantized group: 8-bit float, symmetric.
    private static void Fp8(ConfigJson args)
    {
        string type = args.OptionalString("type") ?? "float";
        int bits = args.OptionalInt("num_bits") ?? 8;
        if (type != "float" || bits != 8)
            throw args.Error($"compressed-tensors {args.Prefix} is {bits}-bit {type}, not FP8; {Supported}");
        if (args.OptionalBool("symmetric") == false) throw args.Error($"compressed-tensors {args.FieldName("symmetric")}: false is not supported for FP8");
    }

    private static bool BlockStructure(ConfigJson weights) =>
        weights.TryGet("block_structure", out var b) && b.ValueKind == JsonValueKind.Array && b.GetArrayLength() == 2
        && b.EnumerateArray().All(e => e.TryGetInt32(out int n) && n == Fp8Linear.BlockSize);

    private static List<string> Strings(ConfigJson c, string name)
    {
        if (!c.TryGet(name, out var v)) return [];
        if (v.ValueKind != JsonValueKind.Array || v.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.String))
            throw c.Error($"field '{c.FieldName(name)}' must be a list of strings");
        return v.EnumerateArray().Select(e => e.GetString()!).ToList();
    }
}
