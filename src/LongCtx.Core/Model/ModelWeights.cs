using System.Text.RegularExpressions;
using LongCtx.Tensors;

namespace LongCtx.Model;

/// <summary>
/// Every weight of a decoder, in host memory: mapped from safetensors by <see cref="Load"/> or
/// random by <see cref="Dummy"/>. When embeddings are tied, <see cref="LmHead"/> is the same object as
/// <see cref="Embedding"/>. Disposing unmaps the files or frees the native memory; the tensors' pointers are
/// invalid afterwards, so backends that wrap them in place must be disposed first.
/// </summary>
public sealed partial class ModelWeights : IDisposable
{
    private readonly IDisposable[] _owners;

    private ModelWeights(ModelConfig config, IReadOnlyDictionary<string, HostTensor> tensors, IDisposable[] owners)
    {
        Config = config;
        _owners = owners;
        HostTensor T(string name) => tensors[name];
        HostTensor? Opt(string name) => tensors.TryGetValue(name, out var t) ? t : null;

        Embedding = T(WeightLayout.Embedding);
        FinalNorm = T(WeightLayout.FinalNorm);
        LmHead = config.TieWordEmbeddings ? Embedding : T(WeightLayout.LmHead);
        Layers = new LayerWeights[config.NumLayers];
        for (int i = 0; i < Layers.Length; i++)
        {
            string L(string s) => WeightLayout.Layer(i, s);
            Layers[i] = new LayerWeights
            {
                QProj = T(L("self_attn.q_proj.weight")), KProj = T(L("self_attn.k_proj.weight")),
                VProj = T(L("self_attn.v_proj.weight")), OProj = T(L("self_attn.o_proj.weight")),
                QBias = Opt(L("self_attn.q_proj.bias")), KBias = Opt(L("self_attn.k_proj.bias")),
                VBias = Opt(L("self_attn.v_proj.bias")), OBias = Opt(L("self_attn.o_proj.bias")),
                GateProj = T(L("mlp.gate_proj.weight")), UpProj = T(L("mlp.up_proj.weight")), DownProj = T(L("mlp.down_proj.weight")),
                InputNorm = T(L("input_layernorm.weight")), PostAttentionNorm = T(L("post_attention_layernorm.weight")),
                QNorm = Opt(L("self_attn.q_norm.weight")), KNorm = Opt(L("self_attn.k_norm.weight")),
                PreFeedforwardNorm = Opt(L("pre_feedforward_layernorm.weight")), PostFeedforwardNorm = Opt(L("post_feedforward_layernorm.weight")),
            };
        }
    }

    public ModelConfig Config { get; }
    /// <summary>[VocabSize, Hidden]</summary>
    public HostTensor Embedding { get; }
    /// <summary>[Hidden]</summary>
    public HostTensor FinalNorm { get; }
    /// <summary>[VocabSize, Hidden]; the very same object as <see cref="Embedding"/> when tied.</summary>
    public HostTensor LmHead { get; }
    public LayerWeights[] Layers { get; }
    public bool IsTied => ReferenceEquals(LmHead, Embedding);

    /// <summary>
    /// Maps the safetensors files of <paramref name="modelDir"/> and checks every tensor the config implies
    /// is there with the implied shape and a float dtype.
    /// </summary>
    public static ModelWeights Load(string modelDir, ModelConfig config)
    {
        var files = SafetensorsWeights.Open(modelDir);
        try
        {
            var tensors = new Dictionary<string, HostTensor>(StringComparer.Ordinal);
            foreach (var spec in WeightLayout.Specs(config))
            {
                if (!files.TryGet(spec.Name, out var t, out var file))
                    throw new LongCtxException($"{modelDir}: tensor {spec.Name} is missing from the safetensors files; " +
                        $"the checkpoint does not match {config.Source} ({config.ModelType}, {config.NumLayers} layers{(config.AttentionBias ? ", attention bias" : "")})");
                if (!t.Shape.AsSpan().SequenceEqual(spec.Shape))
                    throw new LongCtxException($"{Path.GetFileName(file.FilePath)}: tensor {spec.Name} has shape {Dims(t.Shape)}, " +
                        $"expected {Dims(spec.Shape)} from {Path.GetFileName(config.Source)}");
                if (t.DType is not (DType.BF16 or DType.F16 or DType.F32))
                    throw new LongCtxException($"{Path.GetFileName(file.FilePath)}: tensor {spec.Name} has dtype {t.DType}; weights must be BF16, F16 or F32");
                tensors[spec.Name] = t;
            }
            RejectUnexpected(modelDir, config, files, tensors);
            return new ModelWeights(config, tensors, [files]);
        }
        catch
        {
            files.Dispose();
            throw;
        }
    }

    [GeneratedRegex(@"^model\.layers\.(\d+)\.(.+)$")]
    private static partial Regex LayerTensor();

    // Tensors that would change the computation if present but that the config says are absent: ignoring them
    // would run a different model than the checkpoint's without a word, so refuse instead.
    private static void RejectUnexpected(string modelDir, ModelConfig config, SafetensorsWeights files, Dictionary<string, HostTensor> used)
    {
        foreach (string name in files.Names)
        {
            if (used.ContainsKey(name)) continue;
            var m = LayerTensor().Match(name);
            if (!m.Success) continue;
            if (int.TryParse(m.Groups[1].ValueSpan, out int layer) && layer >= config.NumLayers)
                throw new LongCtxException($"{modelDir}: the checkpoint has tensor {name} but {Path.GetFileName(config.Source)} says num_hidden_layers is {config.NumLayers}; the config does not match the weights");
            string rest = m.Groups[2].Value;
            if (rest.EndsWith(".bias", StringComparison.Ordinal) && (rest.StartsWith("self_attn.", StringComparison.Ordinal) || rest.StartsWith("mlp.", StringComparison.Ordinal)))
                throw new LongCtxException($"{modelDir}: the checkpoint has tensor {name} but {Path.GetFileName(config.Source)} says the model has no such bias (attention_bias / mlp_bias); the config does not match the weights");
            if (rest.EndsWith("norm.weight", StringComparison.Ordinal))
                throw new LongCtxException($"{modelDir}: the checkpoint has tensor {name} but a {config.ModelType} model as {Path.GetFileName(config.Source)} describes it has no such norm; check model_type / architectures");
        }
    }

    private static string Dims(int[] shape) => $"[{string.Join(", ", shape)}]";

    public void Dispose()
    {
        foreach (var o in _owners) o.Dispose();
    }

    public override string ToString() => $"{Config.ModelType} weights: {Layers.Length} layers, embedding {Embedding}{(IsTied ? " (tied)" : "")}";
}
