using System.Diagnostics;
using LongCtx.Models;
using LongCtx.Parallel;
using LongCtx.Tensors;

namespace LongCtx.Engine;

/// <summary>
/// Measures what the pass-KV / pass-Q heuristic needs: one rank's attention rate C on a block of the
/// model's head shape, and the ring link's bandwidth BW from one neighbour exchange. Takes a fraction of
/// a second; the engine runs it once, on the first automatic choice, unless rates are configured.
/// </summary>
public static class RateProbe
{
    public static HardwareRates Measure(IRankGroup group, ModelConfig config, int tokens = 512, int messageBytes = 8 << 20)
    {
        var rates = group.Run(rt =>
        {
            var b = rt.Backend;
            int h = rt.Model.Heads, kvh = rt.Model.KvHeads, d = config.HeadDim;
            var layout = new TokenLayout(new int[tokens], Enumerable.Range(0, tokens).ToArray());
            using var q = b.Allocate(b.ActivationType, tokens, h, d);
            using var k = b.Allocate(b.ActivationType, tokens, kvh, d);
            using var v = b.Allocate(b.ActivationType, tokens, kvh, d);
            using var o = b.Allocate(b.ActivationType, tokens, h, d);
            using var lse = b.Allocate(DType.F32, tokens, h);
            b.Attention(q, layout, k, v, layout, 1f / MathF.Sqrt(d), o, lse); // warm-up
            var clock = Stopwatch.StartNew();
            b.Attention(q, layout, k, v, layout, 1f / MathF.Sqrt(d), o, lse);
            b.Download<float>(lse.SliceRows(0, 1), new float[h]); // waits for an asynchronous device
            double flops = 4.0 * tokens * tokens * h * d / 2; // causal
            double c = flops / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);

            double bw = double.PositiveInfinity;
            if (rt.Comm.Size > 1)
            {
                int rows = messageBytes / (b.ActivationType.SizeOf() * kvh * d);
                using var send = b.Allocate(b.ActivationType, rows, kvh, d);
                using var recv = b.Allocate(b.ActivationType, rows, kvh, d);
                int next = (rt.Rank + 1) % rt.Comm.Size, prev = (rt.Rank - 1 + rt.Comm.Size) % rt.Comm.Size;
                rt.Comm.SendReceive([send], next, [recv], prev).Wait(); // warm-up
                rt.Comm.Barrier();
                clock.Restart();
                rt.Comm.SendReceive([send], next, [recv], prev).Wait();
                b.Download<float>(recv.SliceRows(0, 1), new float[kvh * d]); // on a GPU, Wait only orders streams: this waits for the transfer
                bw = send.Bytes / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
            }
            if (rt.Comm.Size > 1 || rt.TensorComm is not null)
            {
                // Ranks in other processes measure on their own; every rank must choose the same ring, so
                // rank 0's figures (MFLOP/s, KB/s) decide for all: its ring's first, then each tensor group's.
                using var shared = b.Upload<int>([(int)Math.Min(int.MaxValue, c / 1e6), (int)Math.Min(int.MaxValue, bw / 1e3)], 2);
                rt.Comm.Broadcast(shared, 0);
                rt.TensorComm?.Broadcast(shared, 0);
                var measured = new int[2];
                b.Download<int>(shared, measured);
                (c, bw) = (measured[0] * 1e6, measured[1] * 1e3);
            }
            return new HardwareRates(c, bw);
        });
        // The slowest rank sets the pace of a ring.
        return new HardwareRates(rates.Min(r => r.AttentionFlopsPerSecond), rates.Min(r => r.LinkBytesPerSecond));
    }
}
