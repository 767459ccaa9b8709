using LongCtx.Backends;
using LongCtx.Backends.Cpu;
using LongCtx.Cuda;
using LongCtx.Tensors;
using LongCtx.Tests.Parallel;

using static LongCtx.Tests.Cuda.TestLayouts;
using static LongCtx.Tests.Gpu.AttentionComparison;

namespace LongCtx.Tests.Gpu;

/// <summary>
/// The decode kernels (few query rows against KV caches) against the CPU backend, with fresh random bf16 inputs:
/// each case runs the tensor-core kernel (Kernels/decode_mma.cu, where it takes the shape) and the CUDA-core kernel
/// (Kernels/decode.cu) on the same inputs, and the tensor-core one again after the other on the same backend (the
/// arrival counters through which the last split of a row merges them must be back at 0). Outputs within 2e-2 and LSEs within 1e-2 relative, rows that see nothing
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
            gpu.UseDecodeMma = mma;
            bool tensorCores = mma && CudaBackend.DecodeMmaTakes(heads / kvHeads, headDim);
            string where = $"seed {seed}, {layout}, {heads} heads on {kvHeads} KV heads of dim {headDim}, {(tensorCores ? "tensor-core" : "CUDA-core")} kernel";
            long before = gpu.DecodeAttentionCalls, beforeMma = gpu.DecodeMmaAttentionCalls;
            var (actualOut, actualLse) = Run(gpu, heads, kvHeads, headDim, q, queries, k, v, keys);
            Assert.True(gpu.DecodeAttentionCalls == before + 1, $"{where}: the decode kernel did not run");
            Assert.True(gpu.DecodeMmaAttentionCalls == beforeMma + (tensorCores ? 1 : 0), $"{where}: another decode kernel ran");

            double outError = DenseReference.RelativeError(actualOut, expectedOut), lseError = LseError(actualLse, expectedLse, where);
            Assert.True(outError < 2e-2, $"{where}: output vs CPU {outError:e2}");
            Assert.True(lseError < 1e-2, $"{where}: LSE vs CPU {lseError:e2}");
            for (int i = 0; i < expectedLse.Length; i++)
                if (float.IsNegativeInfinity(expectedLse[i]))
                    Assert.True(actualOut.AsSpan(i * headDim, headDim).IndexOfAnyExcept(0f) < 0, $"{where}: row {i / heads} head {i % heads} sees nothing but its output is not 0");
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
