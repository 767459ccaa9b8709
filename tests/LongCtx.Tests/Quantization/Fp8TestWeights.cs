using System.Runtime.InteropServices;
using LongCtx.Quantization;
using LongCtx.Tensors;

namespace LongCtx.Tests.Quantization;

/// <summary>Random FP8 weights for kernel and slicing tests, in pinned memory added to the caller's owners.</summary>
internal static class Fp8TestWeights
{
    /// <summary>A float32 weight [n, k] of values uniform in ±0.05 from <paramref name="seed"/>, and those values.</summary>
    public static (HostTensor Tensor, float[] Values) Floats(int n, int k, int seed, List<IDisposable> owners)
    {
        var random = new Random(n + k + seed);
        var values = new float[n * k];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(random.NextDouble() - 0.5) * 0.1f;
        return (new HostTensor("w", DType.F32, [n, k], Pin(values, owners)), values);
    }

    /// <summary>
    /// <paramref name="values"/> [n, k] in 128 × 128 blocks, each with its own scale f32(amax / 448) and codes
    /// e4m3(f32(w / s)); inputs quantised per token and group of 128, as the block format's checkpoints say.
    /// </summary>
    public static HostTensor Blocks(float[] values, int n, int k, List<IDisposable> owners)
    {
        int rb = n / 128, cb = k / 128;
        var scales = new float[rb * cb];
        var codes = new byte[n * k];
        for (int p = 0; p < rb; p++)
            for (int b = 0; b < cb; b++)
            {
                float amax = 0;
                for (int i = 0; i < 128; i++)
                    for (int j = 0; j < 128; j++) amax = Math.Max(amax, Math.Abs(values[(p * 128 + i) * k + b * 128 + j]));
                float s = scales[p * cb + b] = amax / E4M3.Max;
                for (int i = 0; i < 128; i++)
                    for (int j = 0; j < 128; j++) codes[(p * 128 + i) * k + b * 128 + j] = E4M3.Encode(values[(p * 128 + i) * k + b * 128 + j] / s);
            }
        return new HostTensor("w", DType.F8E4M3, [n, k], Pin(codes, owners))
        {
            Fp8 = new Fp8Linear(Fp8WeightScaling.Block, scales, new Fp8Activations(Fp8ActivationScaling.PerTokenGroup)),
        };
    }

    private static nint Pin<T>(T[] array, List<IDisposable> owners) where T : unmanaged
    {
        var handle = GCHandle.Alloc(array, GCHandleType.Pinned);
        owners.Add(new Pinned(handle));
        return handle.AddrOfPinnedObject();
    }

    private sealed class Pinned(GCHandle handle) : IDisposable
    {
        public void Dispose() => handle.Free();
    }
}
