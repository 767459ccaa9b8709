using LongCtx.Backends;
using LongCtx.Backends.Cpu;
using LongCtx.ContextParallel;

namespace LongCtx.Tests.ContextParallel;

/// <summary>
/// The KV cache's capacity: a prefill reserves its rows and an eighth more, so its appends and the decode
/// steps after it do not grow (and copy) the cache; past the reserve it grows and keeps every row. A sliding-window
/// layer keeps the rows it is told to and no more: its held rows are always the last ones appended, one block in
/// order, and its buffer stays near their size however many pass through.
/// </summary>
public class SequenceKvTests
{
    private const int Layers = 2, KvHeads = 2, HeadDim = 4, RowFloats = KvHeads * HeadDim;

    [Fact]
    public void AReservedCacheTakesItsRowsAndAnEighthWithoutGrowing()
    {
        var random = new Random(Random.Shared.Next());
        using var b = new CpuBackend();
        using var kv = new SequenceKv(b, Layers, KvHeads, HeadDim);
        kv.Reserve(1000);
        long reserved = kv.Bytes;
        Assert.Equal(2L * Layers * 1125 * RowFloats * sizeof(float), reserved);

        var appended = new List<float[]>();
        void Append(int rows)
        {
            var k = Enumerable.Range(0, rows * RowFloats).Select(_ => random.NextSingle()).ToArray();
            appended.Add(k);
            using var kt = b.Upload<float>(k, rows, KvHeads, HeadDim);
            for (int layer = 0; layer < Layers; layer++)
            {
                var (keys, values) = kv.Claim(layer, rows);
                ((IBackend)b).CopyEach((kt, keys), (kt, values));
            }
        }
        Append(1000);                                   // the prefill
        for (int step = 0; step < 125; step++) Append(1); // decode steps within the reserve
        Assert.Equal(reserved, kv.Bytes);
        Append(1);                                      // past it: the cache grows by an eighth
        Assert.Equal(2L * Layers * (1125 + 1125 / 8) * RowFloats * sizeof(float), kv.Bytes);

        var expected = appended.SelectMany(a => a).ToArray();
        for (int layer = 0; layer < Layers; layer++)
        {
            var keys = new float[expected.Length];
            b.Download<float>(kv.Keys(layer), keys);
            Assert.Equal(expected, keys);
            b.Download<float>(kv.Values(layer), keys);
            Assert.Equal(expected, keys);
        }
    }

    [Fact]
    public void ReservingLessThanTheCacheHoldsChangesNothing()
    {
        using var b = new CpuBackend();
        using var kv = new SequenceKv(b, Layers, KvHeads, HeadDim);
        kv.Reserve(100);
        long bytes = kv.Bytes;
        kv.Reserve(150);
        Assert.Equal(bytes, kv.Bytes);
    }

    [Fact]
    public void AWindowKeepsItsLastRowsInOneBlockAndABufferOfTheirSize()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        const int window = 50;
        using var b = new CpuBackend();
        using var kv = new SequenceKv(b, 1, KvHeads, HeadDim, [window]);
        var rows = new List<float[]>();
        int next = 0;
        void Append(int n)
        {
            var k = Enumerable.Range(0, n * RowFloats).Select(_ => (float)next++).ToArray();
            for (int i = 0; i < n; i++) rows.Add(k.AsSpan(i * RowFloats, RowFloats).ToArray());
            using var kt = b.Upload<float>(k, n, KvHeads, HeadDim);
            var (keys, values) = kv.Claim(0, n);
            ((IBackend)b).CopyEach((kt, keys), (kt, values));
        }
        void AssertHolds(int count, string what)
        {
            Assert.Equal(count, kv.Held(0));
            var keys = new float[count * RowFloats];
            b.Download<float>(kv.Keys(0), keys);
            Assert.True(rows.Skip(rows.Count - count).SelectMany(r => r).SequenceEqual(keys), $"seed {seed} {what}: not the last {count} rows in order");
        }
        long BufferRows() => kv.Bytes / (2L * RowFloats * sizeof(float));

        Append(2000); // a long prefill: the window holds all of it during the pass
        kv.Forget(0, 2000 - window);
        AssertHolds(window, "after the prefill");
        Assert.True(BufferRows() <= window + 64, $"{BufferRows()} rows of buffer after the prefill");
        for (int step = 0; step < 500; step++)
        {
            // Decode steps and short turns, each followed by what the window drops.
            int n = random.Next(4) == 0 ? random.Next(2, 90) : 1;
            Append(n);
            kv.Forget(0, Math.Max(0, kv.Held(0) - window - random.Next(0, 2)));
            AssertHolds(kv.Held(0), $"step {step}");
            Assert.True(BufferRows() <= 2 * (kv.Held(0) + 64 + n), $"seed {seed} step {step}: {BufferRows()} rows of buffer for {kv.Held(0)} held");
        }
        Assert.Equal(rows.Count, kv.Count);
        kv.Forget(0, kv.Held(0));
        Assert.Equal(0, kv.Bytes);
    }

    [Fact]
    public void OnlyAWindowForgets()
    {
        using var b = new CpuBackend();
        using var kv = new SequenceKv(b, 2, KvHeads, HeadDim, [8, null]);
        kv.Claim(0, 3);
        kv.Claim(1, 3);
        Assert.Throws<InvalidOperationException>(() => kv.Forget(1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => kv.Forget(0, 4));
    }
}
