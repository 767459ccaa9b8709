using System.Diagnostics;
using LongCtx.Backends;
using LongCtx.Comm;
using LongCtx.Tensors;

namespace LongCtx.ContextParallel;

/// <summary>
/// Measures what the pass-KV / pass-Q heuristic needs: one rank's attention rate C on a block of the
/// model's head shape, and the ring link's bandwidth BW from one neighbour exchange. Takes a fraction of
/// a second; the engine runs it once, on the first automatic choice, unless rates are configured.
/// </summary>
public static class RateProbe
{
    /// <summary>
    /// One rank's share, run on every rank at once: <paramref name="ring"/> is its context-parallel ring,
    /// <paramref name="tensorGroup"/> its tensor-parallel group (null without one), and it has
    /// <paramref name="heads"/> query and <paramref name="kvHeads"/> KV heads of <paramref name="d"/> dimensions. Every rank
    /// returns rank 0's figures; a ring goes at the pace of its slowest rank, so the caller takes the smallest of what its
    /// ranks return.
    /// </summary>
    public static HardwareRates Measure(IBackend b, ICommunicator ring, ICommunicator? tensorGroup, int heads, int kvHeads, int d,
        int tokens = 512, int messageBytes = 8 << 20)
    {
        var layout = new TokenLayout(new int[tokens], Enumerable.Range(0, tokens).ToArray());
        using var q = b.Allocate(b.ActivationType, tokens, heads, d);
        using var k = b.Allocate(b.ActivationType, tokens, kvHeads, d);
        using var v = b.Allocate(b.ActivationType, tokens, kvHeads, d);
        using var o = b.Allocate(b.ActivationType, tokens, heads, d);
        using var lse = b.Allocate(DType.F32, tokens, heads);
        b.Attention(q, layout, k, v, layout, AttentionRule.ForHeadDim(d), o, lse); // warm-up
        var clock = Stopwatch.StartNew();
        b.Attention(q, layout, k, v, layout, AttentionRule.ForHeadDim(d), o, lse);
        b.Download<float>(lse.SliceRows(0, 1), new float[heads]); // waits for an asynchronous device
        double flops = 4.0 * tokens * tokens * heads * d / 2; // causal
        double c = flops / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);

        double bw = double.PositiveInfinity;
        if (ring.Size > 1)
        {
            int rows = messageBytes / (b.ActivationType.SizeOf() * kvHeads * d);
            using var send = b.Allocate(b.ActivationType, rows, kvHeads, d);
            using var recv = b.Allocate(b.ActivationType, rows, kvHeads, d);
            int next = (ring.Rank + 1) % ring.Size, prev = (ring.Rank - 1 + ring.Size) % ring.Size;
            ring.SendReceive([send], next, [recv], prev).Wait(); // warm-up
            ring.Barrier();
            clock.Restart();
            ring.SendReceive([send], next, [recv], prev).Wait();
            b.Download<float>(recv.SliceRows(0, 1), new float[kvHeads * d]); // on a GPU, Wait only orders streams: this waits for the transfer
            bw = send.Bytes / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
        }
        if (ring.Size > 1 || tensorGroup is not null)
        {
            // Ranks in other processes measure on their own; every rank must choose the same ring, so
            // rank 0's figures (MFLOP/s, KB/s) decide for all: its ring's first, then each tensor group's.
            using var shared = b.Upload<int>([(int)Math.Min(int.MaxValue, c / 1e6), (int)Math.Min(int.MaxValue, bw / 1e3)], 2);
            ring.Broadcast(shared, 0);
            tensorGroup?.Broadcast(shared, 0);
            var measured = new int[2];
            b.Download<int>(shared, measured);
            (c, bw) = (measured[0] * 1e6, measured[1] * 1e3);
        }
        return new HardwareRates(c, bw);
    }
}
