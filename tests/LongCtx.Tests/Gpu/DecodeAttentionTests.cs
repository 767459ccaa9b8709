using LongCtx.Backends;
using LongCtx.Backends.Cpu;
using LongCtx.Cuda.Attention;
using LongCtx.Cuda.Ops;
using LongCtx.Tensors;
using LongCtx.Tests.ContextParallel;
using static LongCtx.Tests.Cuda.TestLayouts;
using static LongCtx.Tests.Gpu.AttentionComparison;

namespace LongCtx.Tests.Gpu;

/// <summary>
/// The decode kernels (few query rows against KV caches) against the CPU backend, with fresh random bf16 inputs:
/// each case runs the tensor-core kernel (Kernels/decode_mma.cu, where it takes the shape) and the CUDA-core kernel
/// (Kernels/decode.cu) on the same inputs, and the tensor-core one again after the other on the same backend (the
/// arrival counters through which the last split of a row merges them must be back at 0). Outputs and LSEs within the tolerances of <see cref="AttentionComparison"/>, rows that see nothing
/// exactly 0 with LSE −inf, and the kernel meant must actually have run. The shapes cover GQA groups of 1 to 16
/// (and 32, which only the CUDA-core kernel takes), head dimensions 32 to 128 on both kernels and 256 on the
/// CUDA-core one, and rows seeing 1 to 70,000 keys.
/// </summary>
public class DecodeAttentionTests
{
    public enum Layout
    {
        /// <summary>One token decoding against a 5000-token cache.</summary>
        OneRowLongCache,
        /// <summary>One token decoding against a 70,000-token cache: many chunks per warp, splits of uneven length.</summary>
        OneRowVeryLongCache,
        /// <summary>Eight sequences decoding one token each, caches of 1 to 4097 tokens fused in another order.</summary>
        EightSequences,
        /// <summary>Three consecutive new tokens of one sequence: a causal block over its cache.</summary>
        CausalRows,
        /// <summary>A decoding row beside one of a sequence without keys here and one whose keys all come later.</summary>
        RowsSeeingNothing,
    }

    [GpuTheory]
    [InlineData(Layout.OneRowLongCache, 32, 8, 128)]
    [InlineData(Layout.OneRowLongCache, 4, 4, 64)]
    [InlineData(Layout.OneRowLongCache, 14, 2, 256)]
    [InlineData(Layout.OneRowVeryLongCache, 16, 2, 128)]
    [InlineData(Layout.OneRowVeryLongCache, 16, 1, 64)]
    [InlineData(Layout.EightSequences, 8, 2, 128)]
    [InlineData(Layout.EightSequences, 4, 4, 64)]
    [InlineData(Layout.EightSequences, 16, 1, 128)]
    [InlineData(Layout.EightSequences, 8, 1, 64)]
    [InlineData(Layout.EightSequences, 4, 1, 32)]
    [InlineData(Layout.EightSequences, 32, 1, 64)]
    [InlineData(Layout.CausalRows, 8, 2, 64)]
    [InlineData(Layout.CausalRows, 2, 2, 128)]
    [InlineData(Layout.CausalRows, 12, 4, 48)]
    [InlineData(Layout.CausalRows, 6, 2, 96)]
    [InlineData(Layout.RowsSeeingNothing, 8, 2, 128)]
    [InlineData(Layout.RowsSeeingNothing, 4, 4, 64)]
    public void DecodeKernelsMatchTheCpu(Layout layout, int heads, int kvHeads, int headDim)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var (queries, keys) = Layouts(layout);
        var q = RandomBf16(random, queries.Count * heads * headDim);
        var k = RandomBf16(random, keys.Count * kvHeads * headDim);
        var v = RandomBf16(random, keys.Count * kvHeads * headDim);
        using var cpu = new CpuBackend();
        using var gpu = new CudaBackend(0);
        var (expectedOut, expectedLse) = Run(cpu, heads, kvHeads, headDim, q, queries, k, v, keys);
        foreach (bool mma in new[] { true, false, true })
        {
            gpu.AttentionSettings = gpu.AttentionSettings with { DecodeMma = mma };
            bool tensorCores = mma && DecodeAttention.DecodeMmaTakes(heads / kvHeads, headDim);
            string where = $"seed {seed}, {layout}, {heads} heads on {kvHeads} KV heads of dim {headDim}, {(tensorCores ? "tensor-core" : "CUDA-core")} kernel";
            long before = gpu.AttentionPaths.Decode.Calls, beforeMma = gpu.AttentionPaths.Decode.MmaCalls;
            var (actualOut, actualLse) = Run(gpu, heads, kvHeads, headDim, q, queries, k, v, keys);
            Assert.True(gpu.AttentionPaths.Decode.Calls == before + 1, $"{where}: the decode kernel did not run");
            Assert.True(gpu.AttentionPaths.Decode.MmaCalls == beforeMma + (tensorCores ? 1 : 0), $"{where}: another decode kernel ran");

            double outError = DenseReference.RelativeError(actualOut, expectedOut), lseError = LseError(actualLse, expectedLse, where);
            Assert.True(outError < OutputTolerance, $"{where}: output vs CPU {outError:e2}");
            Assert.True(lseError < LseTolerance, $"{where}: LSE vs CPU {lseError:e2}");
            for (int i = 0; i < expectedLse.Length; i++)
                if (float.IsNegativeInfinity(expectedLse[i]))
                    Assert.True(actualOut.AsSpan(i * headDim, headDim).IndexOfAnyExcept(0f) < 0, $"{where}: row {i / heads} head {i % heads} sees nothing but its output is not 0");
        }
    }

    /// <summary>
    /// AttentionEach as a decode step calls it: each sequence's query rows against its own cache, a tensor of its
    /// own (lengths 0 to 5000 at random; the first cache empty, the second sequence decoding 3 tokens at once, a causal
    /// block). The GPU takes up to 16 rows in one launch, reading every row's cache where it is; the CPU calls
    /// Attention per part. Both kernels, within the tolerances of <see cref="DecodeKernelsMatchTheCpu"/>.
    /// </summary>
    [GpuTheory]
    [InlineData(8, 32, 8, 128, 1)]  // the 8B shape, 10 rows: one launch
    [InlineData(20, 8, 2, 64, 2)]   // 22 rows: 16 in one launch, 6 in another
    [InlineData(5, 16, 1, 128, 1)]
    public void SequencesReadTheirOwnCachesInOneLaunch(int sequences, int heads, int kvHeads, int headDim, int launches)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        int[] lengths = Enumerable.Range(0, sequences).Select(s => s == 0 ? 0 : random.Next(3, 5001)).ToArray();
        int[] rows = lengths.Select((_, s) => s == 1 ? 3 : 1).ToArray();
        int totalRows = rows.Sum();
        var q = RandomBf16(random, totalRows * heads * headDim);
        float[][] k = lengths.Select(n => RandomBf16(random, n * kvHeads * headDim)).ToArray();
        float[][] v = lengths.Select(n => RandomBf16(random, n * kvHeads * headDim)).ToArray();
        float scale = 1f / MathF.Sqrt(headDim);
        (float[] Output, float[] Lse) Run(IBackend b)
        {
            using var qt = b.Upload<float>(q, totalRows, heads, headDim);
            var caches = lengths.Select((n, s) => (K: b.Upload<float>(k[s], n, kvHeads, headDim), V: b.Upload<float>(v[s], n, kvHeads, headDim))).ToArray();
            using var output = b.Allocate(b.ActivationType, totalRows, heads, headDim);
            using var lse = b.Allocate(DType.F32, totalRows, heads);
            var parts = new AttentionPart[sequences];
            for (int s = 0, row = 0; s < sequences; row += rows[s], s++)
            {
                // The cache holds the sequence's tokens up to and with its new ones (positions length − rows on).
                var queries = Sequence(s, Math.Max(lengths[s] - rows[s], 0), rows[s]);
                parts[s] = new AttentionPart(row, queries, caches[s].K, caches[s].V, Sequence(s, 0, lengths[s]));
            }
            b.AttentionEach(qt, output, lse, new AttentionRule(scale), parts);
            foreach (var (ck, cv) in caches) { ck.Dispose(); cv.Dispose(); }
            var o = new float[output.Length];
            var l = new float[lse.Length];
            b.Download<float>(output, o);
            b.Download<float>(lse, l);
            return (o, l);
        }
        using var cpu = new CpuBackend();
        using var gpu = new CudaBackend(0);
        var (expectedOut, expectedLse) = Run(cpu);
        foreach (bool mma in new[] { true, false })
        {
            gpu.AttentionSettings = gpu.AttentionSettings with { DecodeMma = mma };
            string where = $"seed {seed}, {sequences} sequences of {string.Join("/", lengths)} keys, {heads} heads on {kvHeads} KV heads of dim {headDim}, {(mma ? "tensor-core" : "CUDA-core")} kernel";
            long before = gpu.AttentionPaths.Decode.Calls;
            var (actualOut, actualLse) = Run(gpu);
            Assert.True(gpu.AttentionPaths.Decode.Calls == before + launches, $"{where}: {gpu.AttentionPaths.Decode.Calls - before} decode launches, not {launches}");
            double outError = DenseReference.RelativeError(actualOut, expectedOut), lseError = LseError(actualLse, expectedLse, where);
            Assert.True(outError < OutputTolerance, $"{where}: output vs CPU {outError:e2}");
            Assert.True(lseError < LseTolerance, $"{where}: LSE vs CPU {lseError:e2}");
            Assert.True(actualOut.AsSpan(0, heads * headDim).IndexOfAnyExcept(0f) < 0, $"{where}: the row of the empty cache is not 0");
        }
    }

    private static (TokenLayout Queries, TokenLayout Keys) Layouts(Layout layout)
    {
        switch (layout)
        {
            case Layout.OneRowLongCache:
                return (new TokenLayout([0], [4999]), Sequence(0, 0, 5000));
            case Layout.OneRowVeryLongCache:
                return (new TokenLayout([0], [69_999]), Sequence(0, 0, 70_000));
            case Layout.EightSequences:
                int[] lengths = [1, 17, 300, 1000, 4097, 63, 2500, 129];
                var queries = TokenLayout.Concat(lengths.Select((n, s) => new TokenLayout([s], [n - 1])).ToList());
                var keys = TokenLayout.Concat(lengths.Select((n, s) => Sequence(s, 0, n)).Reverse().ToList());
                return (queries, keys);
            case Layout.CausalRows:
                return (Sequence(0, 1997, 3), Sequence(0, 0, 2000));
            case Layout.RowsSeeingNothing:
                // Sequence 1 has no keys in this call; sequence 2's keys are at positions after its query.
                return (new TokenLayout([1, 0, 2], [7, 2999, 5]), TokenLayout.Concat([Sequence(0, 0, 3000), Sequence(2, 100, 50)]));
            default:
                throw new ArgumentOutOfRangeException(nameof(layout));
        }
    }
}
