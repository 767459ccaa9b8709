using LongCtx.Tensors;

namespace LongCtx.Model;

public sealed partial class ModelWeights
{
    /// <summary>Standard deviation of random matrices: transformers' initializer_range default.</summary>
    public const double DummyStd = 0.02;

    /// <summary>
    /// Random weights for a config, in native memory, without reading any file: matrices ~ N(0, 0.02), norms
    /// that multiply by 1 (1.0, or 0.0 where the model adds 1 to its norm weights), biases ~ N(0, 0.02). The same (config, seed, dtype) always gives the same bytes. For benchmarks
    /// and demos of model sizes that are not downloaded.
    /// </summary>
    public static ModelWeights Dummy(ModelConfig config, int seed, DType dtype = DType.BF16)
    {
        if (dtype is not (DType.BF16 or DType.F16 or DType.F32))
            throw new LongCtxException($"dummy weights can be BF16, F16 or F32, not {dtype}");
        var specs = WeightLayout.Specs(config).ToList();
        long total = 0;
        foreach (var s in specs) total += Numel(s.Shape) * dtype.SizeOf();
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
            }
            return new ModelWeights(config, tensors, owners.ToArray());
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
