using LongCtx.Backends;
using LongCtx.Backends.Cpu;
using LongCtx.ContextParallel;

namespace LongCtx.Tests.ContextParallel;

/// <summary>
/// The KV cache's capacity: a prefill reserves its rows and an eighth more, so its appends and the decode
/// steps after it do not grow (and copy) the cache; past the reserve it grows and keeps every row.
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
}
