using System.Text.Json;
using LongCtx.Backends;

namespace LongCtx.Model;

/// <summary>
/// config.json → <see cref="ModelConfig"/>. Missing optional fields take the defaults of the matching
/// transformers config class (LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config, Gemma2Config, Gemma3TextConfig)
/// so that a minimal config means what it means to transformers; anything this engine would silently compute wrong
/// is refused instead. Both spellings are read: transformers 5's (<c>rope_parameters</c>, <c>layer_types</c>) and that
/// of checkpoints published with transformers 4 (top-level <c>rope_theta</c>/<c>rope_scaling</c>, Gemma 3's
/// <c>rope_local_base_freq</c> and <c>sliding_window_pattern</c>).
/// </summary>
internal static class ModelConfigParser
{
    // Defaults of the transformers config classes for fields a config.json may leave out.
    private sealed record FamilyDefaults(double RmsNormEps, int MaxPositions, double RopeTheta, int? Bos, int[] Eos, int? SlidingWindow,
        int? HeadDim = null, bool Tied = false, bool Gemma = false, double? AttnSoftcap = null, double? FinalSoftcap = null, double? LocalRopeTheta = null);

    private static readonly Dictionary<string, FamilyDefaults> Families = new()
    {
        ["llama"] = new(1e-6, 2048, 10000, 1, [2], null),
        ["mistral"] = new(1e-6, 4096 * 32, 10000, 1, [2], 4096),
        ["qwen2"] = new(1e-6, 32768, 10000, null, [], 4096),
        ["qwen3"] = new(1e-6, 32768, 10000, null, [], 4096, HeadDim: 128),
        ["gemma2"] = new(1e-6, 8192, 10000, 2, [1], 4096, HeadDim: 256, Tied: true, Gemma: true, AttnSoftcap: 50, FinalSoftcap: 30),
        ["gemma3_text"] = new(1e-6, 131072, 1000000, 2, [1], 4096, HeadDim: 256, Tied: true, Gemma: true, LocalRopeTheta: 10000),
    };

    private static readonly Dictionary<string, string> Architectures = new()
    {
        ["LlamaForCausalLM"] = "llama",
        ["MistralForCausalLM"] = "mistral",
        ["Qwen2ForCausalLM"] = "qwen2",
        ["Qwen3ForCausalLM"] = "qwen3",
        ["Gemma2ForCausalLM"] = "gemma2",
        ["Gemma3ForCausalLM"] = "gemma3_text",
    };

    public static ModelConfig Parse(string json, string source)
    {
        using var doc = ConfigJson.ParseDocument(json, source);
        var c = new ConfigJson(doc.RootElement, source);

        string modelType = ModelType(c);
        var d = Families[modelType];

        var quantization = QuantizationConfigParser.Parse(c);
        if (c.OptionalBool("mlp_bias") == true)
            throw c.Error("mlp_bias: true is not supported (MLP projections without bias only)");
        if (c.OptionalBool("use_bidirectional_attention") == true)
            throw c.Error("use_bidirectional_attention: true (an embedding model) is not supported: only causal language models");

        int hidden = Positive(c, "hidden_size", c.Int("hidden_size"));
        int inter = Positive(c, "intermediate_size", c.Int("intermediate_size"));
        int layers = Positive(c, "num_hidden_layers", c.Int("num_hidden_layers"));
        int heads = Positive(c, "num_attention_heads", c.Int("num_attention_heads"));
        int kvHeads = Positive(c, "num_key_value_heads", c.OptionalInt("num_key_value_heads") ?? heads);
        int vocab = Positive(c, "vocab_size", c.Int("vocab_size"));
        int maxPos = Positive(c, "max_position_embeddings", c.OptionalInt("max_position_embeddings") ?? d.MaxPositions);

        int headDim;
        if (c.OptionalInt("head_dim") is int hd) headDim = Positive(c, "head_dim", hd);
        else if (d.HeadDim is int familyHeadDim) headDim = familyHeadDim; // Qwen3 and Gemma: head_dim is its own field
        else if (hidden % heads != 0)
            throw c.Error($"hidden_size {hidden} is not divisible by num_attention_heads {heads}; give head_dim");
        else headDim = hidden / heads;
        if (headDim % 2 != 0) throw c.Error($"head dimension {headDim} must be even for RoPE");
        if (heads % kvHeads != 0)
            throw c.Error($"num_attention_heads {heads} is not a multiple of num_key_value_heads {kvHeads}");

        double eps = c.OptionalDouble("rms_norm_eps") ?? d.RmsNormEps;
        if (!(eps > 0)) throw c.Error($"rms_norm_eps must be positive, got {eps}");

        bool attentionBias = modelType switch
        {
            "qwen2" => true, // Qwen2Attention always builds q/k/v with bias=True
            "mistral" => false,
            _ => c.OptionalBool("attention_bias") ?? false,
        };
        var (rope, slidingRope) = RopeConfigParser.ParseByLayerType(c, maxPos, d.RopeTheta, d.LocalRopeTheta);
        var slidingLayers = SlidingLayers(c, modelType, layers);
        int? window = slidingLayers.Contains(true) ? SlidingWindow(c, modelType, d, maxPos) : null;

        return new ModelConfig
        {
            ModelType = modelType,
            HiddenSize = hidden,
            IntermediateSize = inter,
            NumLayers = layers,
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            VocabSize = vocab,
            RmsNormEps = eps,
            MaxPositionEmbeddings = maxPos,
            TieWordEmbeddings = c.OptionalBool("tie_word_embeddings") ?? d.Tied,
            AttentionBias = attentionBias,
            MlpBias = false,
            BosTokenId = c.IsPresent("bos_token_id") ? c.OptionalInt("bos_token_id") : d.Bos,
            EosTokenIds = c.IsPresent("eos_token_id") ? c.IntOrIntList("eos_token_id") : d.Eos,
            SlidingWindow = window,
            SlidingLayers = window is null ? [] : slidingLayers,
            Rope = rope,
            SlidingRope = slidingRope,
            QkNorm = modelType is "qwen3" or "gemma3_text",
            NormWeightOffset = d.Gemma ? 1f : 0f,
            SandwichNorms = d.Gemma,
            HiddenActivation = HiddenActivation(c, d),
            ScaleEmbedding = d.Gemma,
            QueryPreAttnScalar = d.Gemma ? PositiveDouble(c, "query_pre_attn_scalar", 256) : null,
            AttnLogitSoftcap = d.Gemma ? Softcap(c, "attn_logit_softcapping", d.AttnSoftcap) : null,
            FinalLogitSoftcap = d.Gemma ? Softcap(c, "final_logit_softcapping", d.FinalSoftcap) : null,
            Quantization = quantization,
            Source = source,
        };
    }

    private static string ModelType(ConfigJson c)
    {
        string? arch = null;
        if (c.TryGet("architectures", out var a) && a.ValueKind == JsonValueKind.Array && a.GetArrayLength() > 0
            && a[0].ValueKind == JsonValueKind.String)
            arch = a[0].GetString();

        string? type = c.OptionalString("model_type");
        if (type is null)
        {
            if (arch is not null && Architectures.TryGetValue(arch, out var inferred)) return inferred;
            throw c.Error(arch is null
                ? $"required field 'model_type' is missing; add it (one of {string.Join(", ", ModelConfig.SupportedModelTypes)})"
                : $"architecture '{arch}' is not supported (supported: {string.Join(", ", Architectures.Keys)})");
        }
        if (type == "gemma3")
            throw c.Error("model_type 'gemma3' is the multimodal Gemma 3 (Gemma3ForConditionalGeneration); only its text model, Gemma3ForCausalLM (model_type gemma3_text), is supported");
        if (!Families.ContainsKey(type))
            throw c.Error($"model_type '{type}' is not supported (supported: {string.Join(", ", ModelConfig.SupportedModelTypes)})");
        // The same model_type also names heads (sequence classification, ...) whose checkpoints lack lm_head.
        if (arch is not null && !arch.EndsWith("ForCausalLM", StringComparison.Ordinal))
            throw c.Error($"architecture '{arch}' is not supported (a {type} causal LM, e.g. {Architectures.First(kv => kv.Value == type).Key}, is needed)");
        return type;
    }

    /// <summary>
    /// Per layer, whether it is a sliding-window layer: <c>layer_types</c> where given (transformers 5 writes it), else
    /// each family's rule — Mistral: every layer; Qwen2/Qwen3: layers from <c>max_window_layers</c> on, with
    /// <c>use_sliding_window</c>; Gemma 2: even layers; Gemma 3: all but every <c>sliding_window_pattern</c>-th.
    /// </summary>
    private static bool[] SlidingLayers(ConfigJson c, string modelType, int layers)
    {
        if (c.TryGet("layer_types", out var types))
        {
            if (types.ValueKind != JsonValueKind.Array || types.GetArrayLength() != layers)
                throw c.Error($"layer_types must be a list of {layers} entries (one per layer), got {(types.ValueKind == JsonValueKind.Array ? $"{types.GetArrayLength()}" : types.ValueKind.ToString().ToLowerInvariant())}");
            var result = new bool[layers];
            for (int i = 0; i < layers; i++)
                result[i] = types[i].ValueKind == JsonValueKind.String ? types[i].GetString() switch
                {
                    "full_attention" => false,
                    "sliding_attention" => true,
                    var other => throw c.Error($"layer_types[{i}] '{other}' is not supported (full_attention or sliding_attention)"),
                } : throw c.Error($"layer_types[{i}] must be a string");
            return result;
        }
        switch (modelType)
        {
            case "mistral":
                return Enumerable.Repeat(true, layers).ToArray();
            case "qwen2" or "qwen3":
                if (c.OptionalBool("use_sliding_window") != true) return new bool[layers]; // the config classes default it to false
                int fullLayers = c.OptionalInt("max_window_layers") ?? 28;
                return Enumerable.Range(0, layers).Select(i => i >= fullLayers).ToArray();
            case "gemma2":
                return Enumerable.Range(0, layers).Select(i => (i + 1) % 2 != 0).ToArray();
            case "gemma3_text":
                int pattern = c.OptionalInt("sliding_window_pattern") ?? c.OptionalInt("_sliding_window_pattern") ?? 6;
                if (pattern < 1) throw c.Error($"sliding_window_pattern must be positive, got {pattern}");
                return Enumerable.Range(0, layers).Select(i => (i + 1) % pattern != 0).ToArray();
            default:
                return new bool[layers];
        }
    }

    // The window where it limits attention: a window as long as the context, or none, is no window. Qwen2 and Qwen3
    // apply it only with use_sliding_window: true, whatever layer_types say (their config classes set it to null otherwise).
    private static int? SlidingWindow(ConfigJson c, string modelType, FamilyDefaults d, int maxPos)
    {
        int? window = c.IsPresent("sliding_window") ? c.OptionalInt("sliding_window") : d.SlidingWindow;
        if (window is not int w || w <= 0 || w >= maxPos) return null;
        if (c.OptionalBool("use_sliding_window") == false) return null;
        if (modelType is "qwen2" or "qwen3" && c.OptionalBool("use_sliding_window") != true) return null;
        return w;
    }

    private static Activation HiddenActivation(ConfigJson c, FamilyDefaults d)
    {
        // Gemma reads hidden_activation (hidden_act is a leftover of Gemma 1 there); the others hidden_act.
        string act = (d.Gemma ? c.OptionalString("hidden_activation") ?? c.OptionalString("hidden_act") : c.OptionalString("hidden_act"))
            ?? (d.Gemma ? "gelu_pytorch_tanh" : "silu");
        return act switch
        {
            "silu" => Activation.Silu,
            "gelu_pytorch_tanh" or "gelu_tanh" => Activation.GeluTanh,
            _ => throw c.Error($"{(d.Gemma ? "hidden_activation" : "hidden_act")} '{act}' is not supported (silu, or gelu_pytorch_tanh as Gemma uses)"),
        };
    }

    private static double? Softcap(ConfigJson c, string name, double? familyDefault)
    {
        double? cap = c.IsPresent(name) ? c.OptionalDouble(name) : familyDefault;
        if (cap is double v && !(v > 0)) throw c.Error($"{name} must be positive or null, got {v}");
        return cap;
    }

    private static double PositiveDouble(ConfigJson c, string name, double familyDefault)
    {
        double v = c.OptionalDouble(name) ?? familyDefault;
        return v > 0 ? v : throw c.Error($"{name} must be positive, got {v}");
    }

    private static int Positive(ConfigJson c, string name, int value) =>
        value > 0 ? value : throw c.Error($"{name} must be positive, got {value}");
}
