using LongCtx.ContextParallel;

namespace LongCtx.Planning;

/// <summary>What a user asks the planner: the model, the hardware, the node counts to try and, if given, the tensor group sizes.</summary>
public sealed record PlanRequest(ModelShape Model, WeightFormat Format, DeviceProfile Device, Link InterNode, int GpusPerNode, IReadOnlyList<int> Nodes,
    IReadOnlyList<int>? TensorSizes = null);

/// <summary>One layout's prediction: both rings, the heuristic's pick, memory, the share of time the link is exposed, and decode.</summary>
public sealed record PlanRow(
    long Context, long NewTokens, long CachedTokens, Layout Layout, PrefillTime PassKv, PrefillTime PassQ, StrategyChoice Choice,
    MemoryUse Memory, double DecodeSeconds)
{
    public PrefillTime Chosen => Choice.Strategy == "pass-q" ? PassQ : PassKv;
    public PrefillTime Faster => PassQ.Seconds < PassKv.Seconds ? PassQ : PassKv;
    public double ExposedShare => Chosen.Seconds > 0 ? Chosen.Exposed / Chosen.Seconds : 0;
}

public static class Planner
{
    /// <summary>
    /// Every layout of the requested node counts the engine can run: tensor groups inside a node whose size divides the
    /// GPUs of a node and the model's heads, KV heads and MLP width (as the engine's tensor parallelism requires).
    /// </summary>
    public static IReadOnlyList<Layout> Layouts(PlanRequest r)
    {
        var m = r.Model;
        var tensors = Enumerable.Range(1, r.GpusPerNode)
            .Where(t => r.GpusPerNode % t == 0 && m.KvHeads % t == 0 && m.Heads % t == 0 && m.Intermediate % t == 0).ToArray();
        if (r.TensorSizes is { } asked)
        {
            foreach (int t in asked)
                if (!tensors.Contains(t))
                    throw new SettingException(Setting.TensorParallel, $"cannot split {m.Name} inside a node of {r.GpusPerNode}: use {string.Join(", ", tensors)}", t);
            tensors = [.. asked.Distinct()];
        }
        return r.Nodes.SelectMany(n => tensors.Select(t => new Layout(n, r.GpusPerNode, t))).ToArray();
    }

    /// <summary>A context of <paramref name="context"/> tokens of which a fraction <paramref name="hitRate"/> is already cached.</summary>
    public static (long NewTokens, long Cached) Split(long context, double hitRate)
    {
        if (context < 1) throw new SettingException(Setting.Context, "must be 1 or more", context);
        if (!(hitRate >= 0 && hitRate < 1)) throw new SettingException(Setting.HitRate, "must be at least 0 and below 1 (the new tokens are a part of the context)", hitRate);
        long cached = (long)Math.Round(context * hitRate);
        return (Math.Max(1, context - cached), Math.Min(cached, context - 1));
    }

    public static PlanRow Row(PlanRequest r, Layout layout, long context, double hitRate)
    {
        var (t, p) = Split(context, hitRate);
        var m = r.Model;
        var ring = RingLink(r, layout);
        var kv = CostModel.Prefill(m, r.Format, r.Device, ring, layout, t, p, "pass-kv");
        var q = CostModel.Prefill(m, r.Format, r.Device, ring, layout, t, p, "pass-q");
        // The heuristic sees one GPU of each ring: its attention rate at the ring step's shape and the ring's link.
        double c = r.Device.FullAttentionFlops.At((t + layout.ContextRanks - 1) / layout.ContextRanks);
        var rates = new HardwareRates(c, ring.BytesPerSecond);
        var choice = StrategyChoice.Decide(t, p, layout.ContextRanks, m.Heads, m.KvHeads, r.Device.ActivationBytes, rates);
        var chosen = choice.Strategy == "pass-q" ? "pass-q" : "pass-kv";
        var memory = CostModel.Memory(m, r.Format, r.Device, layout, t, p, chosen);
        double decode = CostModel.DecodeSeconds(m, r.Format, r.Device, ring, layout, context);
        return new PlanRow(context, t, p, layout, kv, q, choice, memory, decode);
    }

    public static IReadOnlyList<PlanRow> Plan(PlanRequest r, IEnumerable<long> contexts, double hitRate) =>
        contexts.SelectMany(c => Layouts(r).Select(l => Row(r, l, c, hitRate))).ToArray();

    /// <summary>The ring's slowest hop: the inter-node link once the ring leaves a node, else the node's own.</summary>
    public static Link RingLink(PlanRequest r, Layout layout) => layout.Nodes > 1 ? r.InterNode : layout.ContextRanks > 1 ? r.Device.Node : r.InterNode;
}
