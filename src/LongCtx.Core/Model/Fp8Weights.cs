using LongCtx.Quantization;
using LongCtx.Tensors;

namespace LongCtx.Model;

/// <summary>
/// The FP8 projections of a checkpoint as <see cref="ModelWeights.Load"/> maps them: each F8E4M3 weight with its
/// scale tensor (and static input_scale), checked against the config's scheme, each problem one line naming the
/// tensor; <c>--quantization fp8</c>'s codes made from a float weight; the KV cache's per-layer scales.
/// </summary>
internal static unsafe class Fp8Weights
{
    /// <summary>The F8E4M3 weight <paramref name="w"/> of projection <paramref name="module"/> with the scales the scheme says are next to it (their names added to <paramref name="used"/>).</summary>
    public static HostTensor Read(SafetensorsWeights files, HostTensor w, string module, QuantizationConfig q, ISet<string> used)
    {
        int rows = w.Shape[0], cols = w.Shape[1];
        string scaleName = $"{module}.{q.WeightScaleSuffix}";
        int[] expected = q.Weights switch
        {
            Fp8WeightScaling.PerTensor => [1],
            Fp8WeightScaling.PerRow => [rows, 1],
            _ => [rows / Fp8Linear.BlockSize, cols / Fp8Linear.BlockSize],
        };
        if (q.Weights == Fp8WeightScaling.Block && (rows % Fp8Linear.BlockSize != 0 || cols % Fp8Linear.BlockSize != 0))
            throw new LongCtxException($"{files.DirectoryPath}: tensor {w.Name} is {Dims(w.Shape)}: weight_block_size [128, 128] does not divide it; the checkpoint does not fit its quantization_config");
        var scales = Scales(files, scaleName, expected, $"the {q.Method} {Describe(q.Weights)} scale of {module} {Dims(w.Shape)}", used);
        var activations = new Fp8Activations(q.Activations, q.ActivationBound);
        if (q.Activations == Fp8ActivationScaling.Static)
            activations = new(q.Activations, Scales(files, $"{module}.input_scale", [1], $"the static input scale of {module}", used)[0]);
        if (activations.Scaling == Fp8ActivationScaling.PerTokenGroup && cols % Fp8Activations.Group != 0)
            throw new LongCtxException($"{files.DirectoryPath}: tensor {w.Name} is {Dims(w.Shape)}: its inputs are quantised in groups of 128, which do not divide {cols}");
        return new HostTensor(w.Name, w.DType, w.Shape, w.Data, w.Owner) { Fp8 = new Fp8Linear(q.Weights, scales, activations) };
    }

    /// <summary>
    /// A float weight quantised per output row (<c>--quantization fp8</c>): sw = max(f32(amax / 448), f32(1 / (448·512))),
    /// codes e4m3(f32(w / sw)), into memory added to <paramref name="owners"/>; its inputs quantised as <paramref name="activations"/> says.
    /// </summary>
    public static HostTensor QuantizeRows(HostTensor w, Fp8Activations activations, ICollection<IDisposable> owners)
    {
        int rows = w.Shape[0], cols = w.Shape[1];
        var codes = new NativeBuffer((long)rows * cols);
        owners.Add(codes);
        var scales = new float[rows];
        byte* dst = (byte*)codes.Pointer;
        System.Threading.Tasks.Parallel.For(0, rows, () => new float[cols], (r, _, row) =>
        {
            FloatRows.Read(w.DType, (byte*)w.Data, (long)r * cols, row);
            scales[r] = Fp8Quantizer.PerTokenScale(row);
            E4M3.Quantize(row, scales[r], new Span<byte>(dst + (long)r * cols, cols));
            return row;
        }, _ => { });
        return new HostTensor(w.Name, DType.F8E4M3, w.Shape, codes.Pointer, codes) { Fp8 = new Fp8Linear(Fp8WeightScaling.PerRow, scales, activations) };
    }

    /// <summary>The per-layer k_scale and v_scale of a kv_cache_scheme checkpoint.</summary>
    public static Fp8KvScales KvScales(SafetensorsWeights files, int layers, ISet<string> used)
    {
        var keys = new float[layers];
        var values = new float[layers];
        for (int l = 0; l < layers; l++)
        {
            keys[l] = Scales(files, WeightLayout.Layer(l, "self_attn.k_scale"), [1], "the kv_cache_scheme key scale", used)[0];
            values[l] = Scales(files, WeightLayout.Layer(l, "self_attn.v_scale"), [1], "the kv_cache_scheme value scale", used)[0];
        }
        return new Fp8KvScales(keys, values);
    }

    /// <summary>Scale tensors this engine consumes: one the checkpoint has but the config does not call for is refused.</summary>
    public static bool IsScale(string name) =>
        name.EndsWith(".weight_scale", StringComparison.Ordinal) || name.EndsWith(".weight_scale_inv", StringComparison.Ordinal)
        || name.EndsWith(".input_scale", StringComparison.Ordinal) || name.EndsWith(".k_scale", StringComparison.Ordinal) || name.EndsWith(".v_scale", StringComparison.Ordinal);

    // A scale tensor: present, of the expected shape (a vector [n] for [n, 1] and a scalar for [1] are the same
    // scales), BF16/F16/F32, positive and finite; widened to float32 (exact for both).
    private static float[] Scales(SafetensorsWeights files, string name, int[] expected, string what, ISet<string> used)
    {
        if (!files.TryGet(name, out var t, out var file))
            throw new LongCtxException($"{files.DirectoryPath}: tensor {name} is missing: {what}, {Dims(expected)}, must be in the checkpoint");
        long count = 1;
        foreach (int d in expected) count *= d;
        bool shapeOk = t.Shape.AsSpan().SequenceEqual(expected) || (t.Length == count && t.Shape.Length < expected.Length && (t.Shape.Length == 0 || t.Shape[0] == expected[0]));
        if (!shapeOk)
            throw new LongCtxException($"{Path.GetFileName(file.FilePath)}: tensor {name} has shape {Dims(t.Shape)}, but {what} must be {Dims(expected)}");
        if (t.DType is not (DType.BF16 or DType.F16 or DType.F32))
            throw new LongCtxException($"{Path.GetFileName(file.FilePath)}: tensor {name} has dtype {t.DType}; {what} must be BF16, F16 or F32");
        var values = new float[count];
        FloatRows.Read(t.DType, (byte*)t.Data, 0, values);
        for (int i = 0; i < values.Length; i++)
            if (!(values[i] > 0 && float.IsFinite(values[i])))
                throw new LongCtxException($"{Path.GetFileName(file.FilePath)}: tensor {name} holds {values[i]} at index {i}; scales must be positive and finite");
        used.Add(name);
        return values;
    }

    private static string Describe(Fp8WeightScaling s) => s switch
    {
        Fp8WeightScaling.PerTensor => "per-tensor",
        Fp8WeightScaling.PerRow => "per-channel",
        _ => "block",
    };

    private static string Dims(int[] shape) => $"[{string.Join(", ", shape)}]";
}
