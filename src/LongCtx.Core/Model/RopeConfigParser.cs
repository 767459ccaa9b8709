namespace LongCtx.Model;

/// <summary>
/// Reads RoPE settings from a config.json in either spelling. transformers 5 writes one
/// <c>rope_parameters</c> object holding rope_type and rope_theta; transformers 4 (most published Llama 3.x
/// and Qwen2.5 checkpoints) writes <c>rope_theta</c> at the top level and <c>rope_scaling</c> (possibly null)
/// with <c>type</c> or <c>rope_type</c>. Both become the same <see cref="RopeConfig"/>. Models with sliding-window
/// layers may have a RoPE per layer type (<see cref="ParseByLayerType"/>).
/// </summary>
internal static class RopeConfigParser
{
    /// <summary>
    /// The RoPE of the full-attention layers and, where the sliding-window layers have another one, theirs: transformers 5
    /// writes <c>rope_parameters</c> per layer type (<c>{"full_attention": {...}, "sliding_attention": {...}}</c>);
    /// Gemma 3 checkpoints of transformers 4 give the sliding layers a default RoPE of base
    /// <c>rope_local_base_freq</c> (<paramref name="localTheta"/> is its default; null for the other families).
    /// </summary>
    public static (RopeConfig Full, RopeConfig? Sliding) ParseByLayerType(ConfigJson root, int maxPositionEmbeddings, double defaultTheta, double? localTheta)
    {
        if (root.OptionalObject("rope_parameters") is { } m && (m.Has("full_attention") || m.Has("sliding_attention")))
        {
            foreach (string name in m.PropertyNames())
                if (name is not ("full_attention" or "sliding_attention"))
                    throw root.Error($"rope_parameters has an entry for layer type '{name}'; only full_attention and sliding_attention are supported");
            var full = m.OptionalObject("full_attention") is { } f ? Entry(root, f, maxPositionEmbeddings, defaultTheta) : null;
            var sliding = m.OptionalObject("sliding_attention") is { } s ? Entry(root, s, maxPositionEmbeddings, localTheta ?? defaultTheta) : null;
            full ??= sliding!;
            return (full, sliding is null || sliding == full ? null : sliding);
        }
        var rope = Parse(root, maxPositionEmbeddings, defaultTheta);
        if (localTheta is not double local) return (rope, null);
        double theta = root.OptionalDouble("rope_local_base_freq") ?? local;
        if (!(theta > 1)) throw root.Error($"rope_local_base_freq must be greater than 1, got {theta}");
        var slidingRope = RopeConfig.Default(theta);
        return (rope, slidingRope == rope ? null : slidingRope);
    }

    public static RopeConfig Parse(ConfigJson root, int maxPositionEmbeddings, double defaultTheta)
    {
        var modern = root.OptionalObject("rope_parameters");
        var legacy = root.OptionalObject("rope_scaling");
        if (modern is { } m && (m.Has("full_attention") || m.Has("sliding_attention")))
            throw root.Error("per-layer-type rope_parameters are only read for models with sliding-window layers");
        var p = modern ?? legacy;
        double theta = modern?.OptionalDouble("rope_theta") ?? root.OptionalDouble("rope_theta")
            ?? legacy?.OptionalDouble("rope_theta") ?? defaultTheta;
        return Build(root, p, theta, maxPositionEmbeddings);
    }

    // One entry of per-layer-type rope_parameters: its own rope_theta, else the top level's, else the default.
    private static RopeConfig Entry(ConfigJson root, ConfigJson entry, int maxPositionEmbeddings, double defaultTheta) =>
        Build(root, entry, entry.OptionalDouble("rope_theta") ?? root.OptionalDouble("rope_theta") ?? defaultTheta, maxPositionEmbeddings);

    private static RopeConfig Build(ConfigJson root, ConfigJson? p, double theta, int maxPositionEmbeddings)
    {
        if (!(theta > 1)) throw root.Error($"rope_theta must be greater than 1, got {theta}");

        double partial = root.OptionalDouble("partial_rotary_factor") ?? p?.OptionalDouble("partial_rotary_factor") ?? 1.0;
        if (partial != 1.0)
            throw root.Error($"partial_rotary_factor {partial} is not supported (only RoPE over the whole head, factor 1.0)");

        string typeField = p is { } q ? (q.Has("rope_type") ? q.FieldName("rope_type") : q.FieldName("type")) : "rope_type";
        string type = (p?.OptionalString("rope_type") ?? p?.OptionalString("type") ?? "default").ToLowerInvariant();
        if (p is null) return RopeConfig.Default(theta);
        var s = p.Value;

        return type switch
        {
            "default" => RopeConfig.Default(theta),
            "linear" => new RopeConfig { RopeType = type, Theta = theta, Factor = Factor(s, required: true)!.Value },
            "dynamic" => new RopeConfig
            {
                RopeType = type, Theta = theta, Factor = Factor(s, required: true)!.Value,
                OriginalMaxPositionEmbeddings = OptionalPositive(s, "original_max_position_embeddings") ?? maxPositionEmbeddings,
            },
            "llama3" => Llama3(s, theta),
            "yarn" => Yarn(s, theta, maxPositionEmbeddings),
            _ => throw RopeConfig.UnsupportedType(type, typeField, root.Source),
        };
    }

    private static RopeConfig Llama3(ConfigJson s, double theta)
    {
        double low = s.Double("low_freq_factor"), high = s.Double("high_freq_factor");
        if (!(low > 0) || !(high > low))
            throw s.Error($"llama3 RoPE needs 0 < {s.FieldName("low_freq_factor")} < {s.FieldName("high_freq_factor")}, got {low} and {high}");
        return RopeConfig.Llama3(theta, Factor(s, required: true)!.Value, low, high,
            OptionalPositive(s, "original_max_position_embeddings") ?? throw s.Error($"required field '{s.FieldName("original_max_position_embeddings")}' is missing"));
    }

    private static RopeConfig Yarn(ConfigJson s, double theta, int maxPositionEmbeddings)
    {
        int original = OptionalPositive(s, "original_max_position_embeddings") ?? maxPositionEmbeddings;
        // transformers: without an explicit factor, DeepSeek-style configs imply it by max / original.
        double factor = Factor(s, required: false) ?? (double)maxPositionEmbeddings / original;
        // transformers reads beta_fast/beta_slow with `or`, so 0 also means the default.
        double betaFast = s.OptionalDouble("beta_fast") is double bf && bf != 0 ? bf : 32;
        double betaSlow = s.OptionalDouble("beta_slow") is double bs && bs != 0 ? bs : 1;
        return new RopeConfig
        {
            RopeType = "yarn", Theta = theta, Factor = factor, OriginalMaxPositionEmbeddings = original,
            BetaFast = betaFast, BetaSlow = betaSlow,
            Mscale = s.OptionalDouble("mscale"), MscaleAllDim = s.OptionalDouble("mscale_all_dim"),
            AttentionFactor = s.OptionalDouble("attention_factor"),
            Truncate = s.OptionalBool("truncate") ?? true,
        };
    }

    private static double? Factor(ConfigJson s, bool required)
    {
        double? f = required ? s.Double("factor") : s.OptionalDouble("factor");
        if (f is double v && !(v > 0)) throw s.Error($"{s.FieldName("factor")} must be positive, got {v}");
        return f;
    }

    private static int? OptionalPositive(ConfigJson s, string name)
    {
        int? v = s.OptionalInt(name);
        if (v is int i && i <= 0) throw s.Error($"{s.FieldName(name)} must be positive, got {i}");
        return v;
    }
}
