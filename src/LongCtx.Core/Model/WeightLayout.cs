namespace LongCtx.Model;

/// <summary>What a tensor is, which decides how dummy weights fill it.</summary>
internal enum WeightKind { Matrix, Norm, Bias }

/// <summary>One tensor a model of a given config must have: its Hugging Face name and shape.</summary>
internal sealed record WeightSpec(string Name, int[] Shape, WeightKind Kind);

/// <summary>
/// The Hugging Face tensor names and shapes of a checkpoint of the supported families, derived from the config alone. Both
/// loading (to validate a checkpoint) and dummy weights (to allocate one) work from this single list, so the
/// two can never disagree about what a model contains.
/// </summary>
internal static class WeightLayout
{
    public const string Embedding = "model.embed_tokens.weight";
    public const string FinalNorm = "model.norm.weight";
    public const string LmHead = "lm_head.weight";
    public const string LayerPrefix = "model.layers.";

    public static string Layer(int i, string suffix) => $"{LayerPrefix}{i}.{suffix}";

    private static readonly string[] Projections = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"];

    /// <summary>The module of a layer's q/k/v/o/gate/up/down projection weight (model.layers.0.mlp.up_proj), which an FP8 scheme may quantise; null for any other tensor.</summary>
    public static string? ProjectionOf(string weightName)
    {
        if (!weightName.StartsWith(LayerPrefix, StringComparison.Ordinal) || !weightName.EndsWith(".weight", StringComparison.Ordinal)) return null;
        string module = weightName[..^".weight".Length];
        foreach (string p in Projections)
            if (module.EndsWith("." + p, StringComparison.Ordinal)) return module;
        return null;
    }

    public static IEnumerable<WeightSpec> Specs(ModelConfig c)
    {
        int h = c.HiddenSize, q = c.QDim, kv = c.KvDim, inter = c.IntermediateSize;
        yield return new(Embedding, [c.VocabSize, h], WeightKind.Matrix);
        for (int i = 0; i < c.NumLayers; i++)
        {
            yield return new(Layer(i, "input_layernorm.weight"), [h], WeightKind.Norm);
            yield return new(Layer(i, "self_attn.q_proj.weight"), [q, h], WeightKind.Matrix);
            yield return new(Layer(i, "self_attn.k_proj.weight"), [kv, h], WeightKind.Matrix);
            yield return new(Layer(i, "self_attn.v_proj.weight"), [kv, h], WeightKind.Matrix);
            if (c.AttentionBias)
            {
                yield return new(Layer(i, "self_attn.q_proj.bias"), [q], WeightKind.Bias);
                yield return new(Layer(i, "self_attn.k_proj.bias"), [kv], WeightKind.Bias);
                yield return new(Layer(i, "self_attn.v_proj.bias"), [kv], WeightKind.Bias);
            }
            if (c.QkNorm)
            {
                yield return new(Layer(i, "self_attn.q_norm.weight"), [c.HeadDim], WeightKind.Norm);
                yield return new(Layer(i, "self_attn.k_norm.weight"), [c.HeadDim], WeightKind.Norm);
            }
            yield return new(Layer(i, "self_attn.o_proj.weight"), [h, q], WeightKind.Matrix);
            if (c.OProjBias) yield return new(Layer(i, "self_attn.o_proj.bias"), [h], WeightKind.Bias);
            yield return new(Layer(i, "post_attention_layernorm.weight"), [h], WeightKind.Norm);
            if (c.SandwichNorms)
            {
                yield return new(Layer(i, "pre_feedforward_layernorm.weight"), [h], WeightKind.Norm);
                yield return new(Layer(i, "post_feedforward_layernorm.weight"), [h], WeightKind.Norm);
            }
            yield return new(Layer(i, "mlp.gate_proj.weight"), [inter, h], WeightKind.Matrix);
            yield return new(Layer(i, "mlp.up_proj.weight"), [inter, h], WeightKind.Matrix);
            yield return new(Layer(i, "mlp.down_proj.weight"), [h, inter], WeightKind.Matrix);
        }
        yield return new(FinalNorm, [h], WeightKind.Norm);
        if (!c.TieWordEmbeddings) yield return new(LmHead, [c.VocabSize, h], WeightKind.Matrix);
    }
}
