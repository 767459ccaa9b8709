using LongCtx.Tensors;

namespace LongCtx.Model;

public sealed partial class ModelWeights
{
    /// <summary>Standard deviation of random matrices: transformers' initializer_range default.</summary>
    public const double DummyStd = 0.02;

    /// <summary>
    /// Random weights for a config, in native memory, without reading any file: matrices ~ N(0, 0.02), norms
    /// that multiply by 1 (1.0, or 0.0 where the model adds 1 to its norm weights), biases ~ N(0, 0.02). The same (config,
    /// seed, dtype) always gives the same bytes. For benchmarks and demos of model sizes that are not downloaded. Under an
    /// FP8 scheme with per-row weights the projections are those matrices quantised per row (one at a time, so a 70B model
    /// never exists in bf16); an FP8 KV cache (<paramref name="kvCache"/> fp8) has scale 1.
    /// </summary>
    public static ModelWeights Dummy(ModelConfig config, int seed, DType dtype = DType.BF16, KvCacheDType kvCache = KvCacheDType.Auto)
    {
        var q = config.Quantization;
        if (q is not null && (q.Weights != Quantization.Fp8WeightScaling.PerRow || q.Activations == Quantization.Fp8ActivationScaling.Static))
            throw new LongCtxException($"dummy FP8 weights are quantised per row with dynamic inputs (online fp8, compressed-tensors channel, fbgemm_fp8), not as {q.Describe()}");
        bool Fp8(WeightSpec s) => q is not null && WeightLayout.ProjectionOf(s.Name) is { } p && q.Quantizes(p);
        if (dtype is not (DType.BF16 or DType.F16 or DType.F32))
            throw new LongCtxException($"dummy weights can be BF16, F16 or F32, not {dtype}");
        var specs = WeightLayout.Specs(config).ToList();
        long total = 0;
        foreach (var s in specs) total += Numel(s.Shape) * (Fp8(s) ? 1 : dtype.SizeOf());
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (total > available)
            throw new LongCtxException($"dummy weights for {config.Source} need {total / 1e9:0.#} GB of {dtype} but this machine has {available / 1e9:0.#} GB; choose a smaller preset or dtype");

        var owners = new List<IDisposable>(specs.Count);
        try
        {
            var tensors = new Dictionary<string, HostTensor>(StringComparer.Ordinal);
            for (int i = 0; i < specs.Count; i++)
            {
                var s = specs[i];
                long n = Numel(s.Shape);
                var buffer = new NativeBuffer(n * dtype.SizeOf());
                owners.Add(buffer);
                if (s.Kind == WeightKind.Norm) DummyFill.Constant(buffer.Pointer, n, dtype, 1f - config.NormWeightOffset);
                else DummyFill.Normal(buffer.Pointer, n, dtype, DummyStd, (ulong)(uint)seed, i);
                tensors[s.Name] = new HostTensor(s.Name, dtype, s.Shape, buffer.Pointer, buffer);
                if (!Fp8(s)) continue;
                tensors[s.Name] = Fp8Weights.QuantizeRows(tensors[s.Name], new Quantization.Fp8Activations(q!.Activations, q.ActivationBound), owners);
                owners.Remove(buffer);
                buffer.Dispose();
            }
            var kv = KvScales(config, kvCache, () => Quantization.Fp8KvScales.Ones(config.NumLayers));
            return new ModelWeights(config, tensors, owners.ToArray(), kv);
        }
        catch (OutOfMemoryException e)
        {
            foreach (var o in owners) o.Dispose();
            throw new LongCtxException($"out of memory building {total / 1e9:0.#} GB of dummy weights for {config.Source}; choose a smaller preset", e);
        }
        catch
        {
            foreach (var o in owners) o.Dispose();
            throw;
        }
    }

    private static long Numel(int[] shape)
    {
        long n = 1;
        foreach (int d in shape) n *= d;
        return n;
    }
}
