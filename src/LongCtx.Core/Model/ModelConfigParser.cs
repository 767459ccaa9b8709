using System.Text.Json;

namespace LongCtx.Model;

/// <summary>
/// config.json → <see cref="ModelConfig"/>. Missing optional fields take the defaults of the matching
/// transformers config class (LlamaConfig, MistralConfig, Qwen2Config) so that a minimal config means what
/// it means to transformers; anything this engine would silently compute wrong is refused instead.
/// </summary>
internal static class ModelConfigParser
{
    // Defaults of the transformers config classes for fields a config.json may leave out.
    private sealed record FamilyDefaults(double RmsNormEps, int MaxPositions, double RopeTheta, int? Bos, int[] Eos, int? SlidingWindow);

    private static readonly Dictionary<string, FamilyDefaults> Families = new()
    {
        ["llama"] = new(1e-6, 2048, 10000, 1, [2], null),
        ["mistral"] = new(1e-6, 4096 * 32, 10000, 1, [2], 4096),
        ["qwen2"] = new(1e-6, 32768, 10000, null, [], 4096),
    };

    private static readonly Dictionary<string, string> Architectures = new()
    {
        ["LlamaForCausalLM"] = "llama",
        ["MistralForCausalLM"] = "mistral",
        ["Qwen2ForCausalLM"] = "qwen2",
    };

    public static ModelConfig Parse(string json, string source)
    {
        using var doc = ConfigJson.ParseDocument(json, source);
        var c = new ConfigJson(doc.RootElement, source);

        string modelType = ModelType(c);
        var d = Families[modelType];

        var quantization = QuantizationConfigParser.Parse(c);
        string act = c.OptionalString("hidden_act") ?? "silu";
        if (act != "silu")
            throw c.Error($"hidden_act '{act}' is not supported (only silu, as Llama, Mistral and Qwen2 use)");
        if (c.OptionalBool("mlp_bias") == true)
            throw c.Error("mlp_bias: true is not supported (MLP projections without bias only)");

        int hidden = Positive(c, "hidden_size", c.Int("hidden_size"));
        int inter = Positive(c, "intermediate_size", c.Int("intermediate_size"));
        int layers = Positive(c, "num_hidden_layers", c.Int("num_hidden_layers"));
        int heads = Positive(c, "num_attention_heads", c.Int("num_attention_heads"));
        int kvHeads = Positive(c, "num_key_value_heads", c.OptionalInt("num_key_value_heads") ?? heads);
        int vocab = Positive(c, "vocab_size", c.Int("vocab_size"));
        int maxPos = Positive(c, "max_position_embeddings", c.OptionalInt("max_position_embeddings") ?? d.MaxPositions);

        int headDim;
        if (c.OptionalInt("head_dim") is int hd) headDim = Positive(c, "head_dim", hd);
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
            "llama" => c.OptionalBool("attention_bias") ?? false,
            _ => false,
        };

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
            TieWordEmbeddings = c.OptionalBool("tie_word_embeddings") ?? false,
            AttentionBias = attentionBias,
            MlpBias = false,
            BosTokenId = c.IsPresent("bos_token_id") ? c.OptionalInt("bos_token_id") : d.Bos,
            EosTokenIds = c.IsPresent("eos_token_id") ? c.IntOrIntList("eos_token_id") : d.Eos,
            SlidingWindow = SlidingWindow(c, modelType, d, maxPos, layers),
            Rope = RopeConfigParser.Parse(c, maxPos, d.RopeTheta),
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
                ? "required field 'model_type' is missing; add it (one of llama, mistral, qwen2)"
                : $"architecture '{arch}' is not supported (supported: {string.Join(", ", Architectures.Keys)})");
        }
        if (!Families.ContainsKey(type))
            throw c.Error($"model_type '{type}' is not supported (supported: {string.Join(", ", ModelConfig.SupportedModelTypes)})");
        // The same model_type also names heads (sequence classification, ...) whose checkpoints lack lm_head.
        if (arch is not null && !arch.EndsWith("ForCausalLM", StringComparison.Ordinal))
            throw c.Error($"architecture '{arch}' is not supported (a {type} causal LM, e.g. {Architectures.First(kv => kv.Value == type).Key}, is needed)");
        return type;
    }

    // Transformers applies a window only where it actually limits attention. Qwen2 additionally gates it with
    // use_sliding_window (false in every Qwen2.5 release) and applies it only to layers >= max_window_layers.
    private static int? SlidingWindow(ConfigJson c, string modelType, FamilyDefaults d, int maxPos, int layers)
    {
        int? window = c.IsPresent("sliding_window") ? c.OptionalInt("sliding_window") : d.SlidingWindow;
        if (window is not int w || w <= 0 || w >= maxPos) return null;
        if (c.OptionalBool("use_sliding_window") == false) return null;
        if (modelType == "qwen2")
        {
            if (c.OptionalBool("use_sliding_window") != true) return null; // Qwen2Config defaults it to false
            if (c.OptionalInt("max_window_layers") is int mwl && mwl >= layers) return null;
        }
        return w;
    }

    private static int Positive(ConfigJson c, string name, int value) =>
        value > 0 ? value : throw c.Error($"{name} must be positive, got {value}");
}
