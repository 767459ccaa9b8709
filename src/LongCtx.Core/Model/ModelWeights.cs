using System.Text.RegularExpressions;
using LongCtx.Quantization;
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

    private ModelWeights(ModelConfig config, IReadOnlyDictionary<string, HostTensor> tensors, IDisposable[] owners, Fp8KvScales? kvCache)
    {
        Config = config;
        _owners = owners;
        KvCache = kvCache;
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
    /// <summary>The FP8 KV cache's scales per layer; null: the cache holds the backend's activation type.</summary>
    public Fp8KvScales? KvCache { get; }

    /// <summary>
    /// Maps the safetensors files of <paramref name="modelDir"/> and checks every tensor the config implies
    /// is there with the implied shape and a float dtype, or, for the projections an FP8 scheme quantises, as
    /// F8E4M3 codes with their scales (<see cref="Fp8Weights"/>); <c>--quantization fp8</c> (an online
    /// <see cref="ModelConfig.Quantization"/>) quantises them here. <paramref name="kvCache"/> decides the KV cache.
    /// </summary>
    public static ModelWeights Load(string modelDir, ModelConfig config, KvCacheDType kvCache = KvCacheDType.Auto)
    {
        var files = SafetensorsWeights.Open(modelDir);
        var owners = new List<IDisposable> { files };
        try
        {
            var q = config.Quantization;
            var tensors = new Dictionary<string, HostTensor>(StringComparer.Ordinal);
            var used = new HashSet<string>(StringComparer.Ordinal);
            foreach (var spec in WeightLayout.Specs(config))
            {
                if (!files.TryGet(spec.Name, out var t, out var file))
                    throw new LongCtxException($"{modelDir}: tensor {spec.Name} is missing from the safetensors files; " +
                        $"the checkpoint does not match {config.Source} ({config.ModelType}, {config.NumLayers} layers{(config.AttentionBias ? ", attention bias" : "")})");
                if (!t.Shape.AsSpan().SequenceEqual(spec.Shape))
                    throw new LongCtxException($"{Path.GetFileName(file.FilePath)}: tensor {spec.Name} has shape {Dims(t.Shape)}, " +
                        $"expected {Dims(spec.Shape)} from {Path.GetFileName(config.Source)}");
                used.Add(spec.Name);
                tensors[spec.Name] = Checked(t, file, WeightLayout.ProjectionOf(spec.Name), config, files, used, owners);
            }
            var kv = KvScales(config, kvCache, () => Fp8Weights.KvScales(files, config.NumLayers, used));
            RejectUnexpected(modelDir, config, files, used);
            return new ModelWeights(config, tensors, [.. owners], kv);
        }
        catch
        {
            foreach (var o in owners) o.Dispose();
            throw;
        }
    }

    // A tensor of the right shape as the scheme wants it: float, or F8E4M3 codes with scales for a projection the
    // FP8 scheme quantises (read, or made here under --quantization fp8).
    private static HostTensor Checked(HostTensor t, SafetensorsFile file, string? projection, ModelConfig config, SafetensorsWeights files,
        ISet<string> used, List<IDisposable> owners)
    {
        var q = config.Quantization;
        string where = Path.GetFileName(file.FilePath);
        bool fp8 = projection is not null && q is not null && q.Quantizes(projection);
        if (t.DType == DType.F8E4M3)
        {
            if (projection is null)
                throw new LongCtxException($"{where}: tensor {t.Name} is F8_E4M3; only the q/k/v/o/gate/up/down projections may be FP8 (embeddings, norms and lm_head stay float)");
            if (q is null)
                throw new LongCtxException($"{where}: tensor {t.Name} is F8_E4M3 but {Path.GetFileName(config.Source)} has no quantization_config to say how its scales apply; use the checkpoint's own config.json");
            if (q.Online)
                throw new SettingException(Setting.Quantization, $"quantises a bf16 checkpoint, but {where}: tensor {t.Name} is already F8_E4M3; leave it out", "fp8");
            if (!fp8)
                throw new LongCtxException($"{where}: tensor {t.Name} is F8_E4M3 but quantization_config ({q.Method}) leaves {projection} unquantised; the checkpoint does not match its config");
            return Fp8Weights.Read(files, t, projection!, q, used);
        }
        if (t.DType is not (DType.BF16 or DType.F16 or DType.F32))
            throw new LongCtxException($"{where}: tensor {t.Name} has dtype {t.DType}; weights must be BF16, F16 or F32 (or F8_E4M3 with a quantization_config)");
        if (!fp8) return t;
        if (!q!.Online)
            throw new LongCtxException($"{where}: tensor {t.Name} is {t.DType} but quantization_config ({q.Method}) makes {projection} FP8; the checkpoint does not match its config");
        return Fp8Weights.QuantizeRows(t, Fp8Activations.PerToken, owners);
    }

    // The KV cache's scales, for loaded and dummy weights alike: a kv_cache_scheme's (read by checkpoint, whatever the
    // cache, so a checkpoint's scales are always checked) under auto or fp8, 1 under fp8 without one; null: the cache
    // holds the activation type.
    private static Fp8KvScales? KvScales(ModelConfig config, KvCacheDType kvCache, Func<Fp8KvScales> checkpoint)
    {
        var scales = config.Quantization?.KvCacheScales == true ? checkpoint() : null;
        return kvCache switch
        {
            KvCacheDType.Fp8 => scales ?? Fp8KvScales.Ones(config.NumLayers),
            KvCacheDType.Auto => scales,
            _ => null,
        };
    }

    [GeneratedRegex(@"^model\.layers\.(\d+)\.(.+)$")]
    private static partial Regex LayerTensor();

    // Tensors that would change the computation if present but that the config says are absent: ignoring them
    // would run a different model than the checkpoint's without a word, so refuse instead.
    private static void RejectUnexpected(string modelDir, ModelConfig config, SafetensorsWeights files, HashSet<string> used)
    {
        foreach (string name in files.Names)
        {
            if (used.Contains(name)) continue;
            if (Fp8Weights.IsScale(name))
                throw new LongCtxException($"{modelDir}: the checkpoint has tensor {name} but {Path.GetFileName(config.Source)} " +
                    (config.Quantization is { } q ? $"({q.Method}) does not call for it" : "has no quantization_config") + "; the config does not match the weights");
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
