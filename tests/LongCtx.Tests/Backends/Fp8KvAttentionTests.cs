using LongCtx.Backends;
using LongCtx.Backends.Cpu;
using LongCtx.Quantization;
using LongCtx.Tensors;

namespace LongCtx.Tests.Backends;

/// <summary>
/// Attention on the CPU over the FP8 cache's codes, which it widens a key tile and a KV head at a time, against the same
/// attention over a float32 copy of the whole K and V (code · Scale): equal bit for bit, with grouped heads, several
/// sequences, windows, soft caps and scales other than 1.
/// </summary>
public class Fp8KvAttentionTests
{
    [Fact]
    public void CodesReadATileAtATimeEqualTheirFloatCopy()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        using var b = new CpuBackend(threads: 2);
        int seen = 0;
        for (int trial = 0; trial < 20; trial++)
        {
            int kvHeads = random.Next(1, 4), heads = kvHeads * random.Next(1, 4), d = new[] { 8, 16, 32 }[random.Next(3)];
            var (queries, keys) = WindowedAttentionTests.RandomLayouts(random);
            var rule = new AttentionRule(0.3f + random.NextSingle(), random.Next(3) == 0 ? random.Next(1, 90) : null, random.Next(2) == 0 ? 2.5f : null);
            using var q = b.Upload<float>(WindowedAttentionTests.Values(random, queries.Count * heads * d), queries.Count, heads, d);
            // Scales as a checkpoint's bf16 k_scale and v_scale are: a few significant bits.
            using var kCodes = Codes(b, random, keys.Count, kvHeads, d, scale: 0.0234375f);
            using var vCodes = Codes(b, random, keys.Count, kvHeads, d, scale: 1.5f);
            using var kFloat = b.Upload<float>(Values(kCodes), keys.Count, kvHeads, d);
            using var vFloat = b.Upload<float>(Values(vCodes), keys.Count, kvHeads, d);
            var fromCodes = WindowedAttentionTests.Run(b, q, queries, kCodes, vCodes, keys, rule);
            var fromFloats = WindowedAttentionTests.Run(b, q, queries, kFloat, vFloat, keys, rule);
            string what = $"seed {seed} trial {trial}: {queries.Count} queries, {keys.Count} keys, {heads}/{kvHeads} heads, d {d}, {rule}";
            if (fromFloats.Output.Any(x => x != 0f)) seen++;
            Assert.True(fromCodes.Output.AsSpan().SequenceEqual(fromFloats.Output), $"{what}: outputs differ");
            Assert.True(fromCodes.Lse.AsSpan().SequenceEqual(fromFloats.Lse), $"{what}: LSEs differ");
        }
        // Random layouts may hide every key; most trials must see some, or equal outputs would prove nothing.
        Assert.True(seen >= 10, $"seed {seed}: only {seen} of 20 trials saw any key");
    }

    // Random e4m3 codes, none NaN (0x7F, 0xFF), with their dequantisation scale.
    private static CpuTensor Codes(CpuBackend b, Random random, int rows, int kvHeads, int d, float scale)
    {
        var t = (CpuTensor)b.Allocate(DType.F8E4M3, rows, kvHeads, d);
        t.Scale = scale;
        var bytes = t.RawBytes;
        for (int i = 0; i < bytes.Length; i++)
            do bytes[i] = (byte)random.Next(256); while ((bytes[i] & 0x7F) == 0x7F);
        return t;
    }

    private static float[] Values(CpuTensor codes)
    {
        var values = new float[codes.Length];
        E4M3.Dequantize(codes.RawBytes, codes.Scale, values);
        return values;
    }
}
