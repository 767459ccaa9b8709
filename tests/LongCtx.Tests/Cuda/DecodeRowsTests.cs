using LongCtx.Cuda.Attention;
using LongCtx.Tensors;
using static LongCtx.Tests.Cuda.TestLayouts;

namespace LongCtx.Tests.Cuda;

/// <summary>
/// The per-row key ranges the decode kernel reads, checked key by key against the layout rule (query i sees
/// key j iff same sequence and pos_k ≤ pos_q), and how the decode launch cuts its work.
/// </summary>
public class DecodeRowsTests
{
    [Fact]
    public void WheneverRandomLayoutsDecomposeEachRowsRangeIsExactlyTheKeysItSees() => ForRandomDecomposableLayouts(AssertRangesDescribeTheRule);

    [Fact]
    public void WithAWindowEachRowsRangeIsExactlyTheKeysItSees() => ForRandomDecomposableLayouts(AssertRangesDescribeTheRule, windowed: true);

    [Fact]
    public void ADecodeRowOverAWindowedCacheLeavesOutItsOldestRow()
    {
        // A sliding-window layer of W = 4 holds the last 4 positions (6-9) and the new token's row (10): position 6 is one too old.
        var queries = new TokenLayout([0], [10]);
        var keys = Sequence(0, 6, 5);
        var (starts, counts) = DecodeRows.KeyRanges(AttentionBlocks.Decompose(queries, keys, 4)!, 1);
        Assert.Equal([1], starts);
        Assert.Equal([4], counts);
    }

    [Fact]
    public void DecodeRowsOfSeveralSequencesSeeTheirWholeCaches()
    {
        // Three sequences decoding one token each against caches of 10, 3 and 7 tokens plus the new one.
        var queries = new TokenLayout([0, 1, 2], [10, 3, 7]);
        var keys = Concat([Sequence(0, 0, 11), Sequence(1, 0, 4), Sequence(2, 0, 8)]);
        var (starts, counts) = DecodeRows.KeyRanges(AttentionBlocks.Decompose(queries, keys)!, queries.Count);
        Assert.Equal([0, 11, 15], starts);
        Assert.Equal([11, 4, 8], counts);
    }

    [Fact]
    public void ConsecutiveRowsOfOneSequenceSeeGrowingPrefixes()
    {
        var queries = Sequence(0, 997, 3);
        var keys = Sequence(0, 0, 1000);
        var (starts, counts) = DecodeRows.KeyRanges(AttentionBlocks.Decompose(queries, keys)!, queries.Count);
        Assert.Equal([0, 0, 0], starts);
        Assert.Equal([998, 999, 1000], counts);
    }

    [Fact]
    public void RowsWithoutVisibleKeysSeeNothing()
    {
        // Sequence 1 has no keys here; sequence 2's keys all come after its query.
        var queries = new TokenLayout([0, 1, 2], [4, 9, 3]);
        var keys = Concat([Sequence(0, 0, 5), Sequence(2, 10, 5)]);
        var blocks = AttentionBlocks.Decompose(queries, keys)!;
        Assert.Equal(2, blocks.EmptyRuns.Count);
        Assert.Equal([5, 0, 0], DecodeRows.KeyRanges(blocks, queries.Count).Counts);
    }

    [Theory]
    [InlineData(4 * 132, 8, 130_000, 66)]   // CUDA-core kernel (4 blocks an SM), an 8B model decoding one token at 130K: 528 blocks
    [InlineData(2 * 132, 8, 130_000, 33)]   // tensor-core kernel at d = 128 (2 blocks an SM): one wave of 264
    [InlineData(4 * 132, 8, 1000, 4)]       // a short cache: no split under 256 keys
    [InlineData(4 * 132, 1, 1_000_000, 256)]
    [InlineData(4 * 132, 128, 100_000, 4)]  // 16 rows of 8 KV heads: 512 blocks, and 640 would start a second wave
    [InlineData(2 * 132, 32, 130_000, 8)]   // 32 KV heads: 256 blocks, not 288
    [InlineData(2 * 132, 512, 100_000, 1)]  // more blocks than the GPU holds: one split each
    [InlineData(4 * 132, 8, 0, 1)]          // every row sees nothing: one split writes -inf
    public void SplitsFillTheGpuWithoutCuttingShortRanges(int residentBlocks, int blocksPerSplit, int maxKeyCount, int expected) =>
        Assert.Equal(expected, DecodeAttention.DecodeSplits(residentBlocks, blocksPerSplit, maxKeyCount));

    [Theory]
    [InlineData(4, 128, true)]    // Llama 3 8B
    [InlineData(16, 64, true)]
    [InlineData(1, 48, true)]     // any multiple of 16: the MMA's k-step
    [InlineData(8, 256, false)]   // the output would not fit in registers
    [InlineData(32, 128, false)]  // more heads than the MMA's 16 rows
    [InlineData(4, 40, false)]
    public void TheTensorCoreKernelTakesGroupsOfUpTo16AndHeadDimsOfUpTo128(int group, int headDim, bool expected) =>
        Assert.Equal(expected, DecodeAttention.DecodeMmaTakes(group, headDim));

    // Hopper gives an SM 228 KB of shared memory, 1 KB of it reserved per block; the kernel's static part is under 1 KB.
    [Theory]
    [InlineData(128, 139_264)]  // one block an SM (measured faster than two with 3 stages)
    [InlineData(96, 106_496)]
    [InlineData(64, 73_728)]    // three blocks an SM
    [InlineData(16, 24_576)]
    public void TheTensorCoreKernelsRingsFitAnSm(int headDim, int bytes)
    {
        Assert.Equal((uint)bytes, DecodeAttention.DecodeMmaSharedBytes(headDim, DecodeAttention.DecodeMmaStages));
        Assert.True(bytes + 2048 <= 228 * 1024);
    }

    [Theory]
    [InlineData(128, 16)]
    [InlineData(64, 16)]
    [InlineData(96, 16)]
    [InlineData(256, 16)]
    [InlineData(48, 8)]   // 16 lanes would leave each 3 dims: an odd count breaks the kernel's bf16 pairs
    [InlineData(80, 8)]
    [InlineData(16, 8)]
    public void KeysAreSharedBy16LanesWhenEachGetsAnEvenNumberOfDims(int headDim, int expected) =>
        Assert.Equal(expected, DecodeAttention.DecodeLanesPerKey(headDim));

    // A lane holds HEADS · d / lanes floats of queries: at most 64.
    [Theory]
    [InlineData(4, 128, 4)]   // Llama 3 8B: 32 floats
    [InlineData(8, 128, 8)]   // Llama 3 70B: 64
    [InlineData(16, 128, 8)]
    [InlineData(16, 64, 16)]
    [InlineData(7, 256, 4)]   // 112 floats: two shares of 4 and 3 heads
    [InlineData(1, 256, 1)]
    [InlineData(12, 48, 6)]   // 8 lanes: 72 floats
    [InlineData(16, 16, 16)]
    public void GroupsTooLargeForRegistersAreSharedAmongBlocks(int group, int headDim, int expected) =>
        Assert.Equal(expected, DecodeAttention.DecodeHeadsPerBlock(group, headDim));

    private static void AssertRangesDescribeTheRule(TokenLayout queries, TokenLayout keys, AttentionBlocks blocks, int? window, string where)
    {
        var mask = new LongCtx.Backends.AttentionRule(1, window);
        var (starts, counts) = DecodeRows.KeyRanges(blocks, queries.Count);
        Assert.True(starts.Length == queries.Count && counts.Length == queries.Count, $"{where}: {starts.Length} ranges for {queries.Count} rows");
        for (int i = 0; i < queries.Count; i++)
            for (int j = 0; j < keys.Count; j++)
            {
                bool rule = queries.SeqIds[i] == keys.SeqIds[j] && mask.Sees(queries.Positions[i], keys.Positions[j]);
                bool inRange = j >= starts[i] && j < starts[i] + counts[i];
                Assert.True(rule == inRange, $"{where}: query {i} (seq {queries.SeqIds[i]} pos {queries.Positions[i]}) has keys [{starts[i]}, {starts[i] + counts[i]}), key {j} (seq {keys.SeqIds[j]} pos {keys.Positions[j]}): rule {rule}");
            }
    }
}
