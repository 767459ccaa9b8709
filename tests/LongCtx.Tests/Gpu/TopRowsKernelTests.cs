using LongCtx.Backends;
using LongCtx.Cuda.Ops;
using LongCtx.Tensors;

namespace LongCtx.Tests.Gpu;

/// <summary>
/// The GPU's per-head selection (Kernels/top_rows.cu, APB's KV compression) against the host's
/// (HostSelection.TopRows): exactly the same rows, for fresh random F32 and BF16 scores with many ties, ±0,
/// denormals (which a fast-math comparison would flush to 0), infinities and NaN (ranked as −inf), counts from 1
/// to all, and blocks from one row to 40,000 (many chunks).
/// </summary>
public class TopRowsKernelTests
{
    [GpuTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void TheGpuKeepsTheRowsTheHostKeeps(bool bf16)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        using var gpu = new CudaBackend(0);
        for (int trial = 0; trial < 40; trial++)
        {
            int n = trial == 0 ? 40_000 : trial == 1 ? 1 : random.Next(2, 5000), heads = random.Next(1, 9);
            int distinct = random.Next(3) == 0 ? random.Next(1, 6) : 0;
            var scores = new float[n * heads];
            for (int i = 0; i < scores.Length; i++)
            {
                float x = distinct > 0 ? random.Next(distinct) - 1 : (float)(random.NextDouble() * 2 - 1);
                if (random.Next(40) == 0)
                    x = random.Next(6) switch { 0 => float.NaN, 1 => float.NegativeInfinity, 2 => float.PositiveInfinity, 3 => -0f, 4 => 1e-40f, _ => -1e-40f };
                // BF16: values a bf16 holds exactly (the top half of a float), so the host sees what the GPU holds.
                scores[i] = bf16 ? BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(x) & 0xFFFF0000u) : x;
            }
            int count = random.Next(4) == 0 ? n : random.Next(1, n + 1);
            using var t = bf16 ? gpu.Upload<float>(scores, n, heads) : gpu.UploadFloats(scores).View(n, heads);
            Assert.Equal(bf16 ? DType.BF16 : DType.F32, t.DType);
            using var rows = gpu.Allocate(DType.I32, count, heads);
            gpu.TopRowsPerHead(t, count, rows);
            var actual = new int[count * heads];
            gpu.Download<int>(rows, actual);
            for (int h = 0; h < heads; h++)
            {
                var expected = HostSelection.TopRows(scores, n, heads, h, count);
                var got = Enumerable.Range(0, count).Select(i => actual[i * heads + h]).ToArray();
                Assert.True(expected.SequenceEqual(got),
                    $"seed {seed} trial {trial}: n={n} heads={heads} head {h} count={count} distinct={distinct} {(bf16 ? "bf16" : "f32")}: rows differ");
            }
        }
    }
}
