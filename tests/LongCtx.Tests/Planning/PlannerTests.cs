using LongCtx.Model;
using LongCtx.Planning;

namespace LongCtx.Tests.Planning;

/// <summary>
/// The planner against what was measured: this project's own TTFTs on H200s (docs/PERFORMANCE.md, fourteenth and
/// seventeenth rounds) within 10%, and the paper's scaling results on its 500 W H100s (Yang et al. 2024: Table 7,
/// section 4.2.1, Figure 8) within 25%, with the one point it misses pinned where docs/PERFORMANCE.md explains it.
/// </summary>
public class PlannerTests
{
    private static PlanRequest Request(string model, string dtype, string gpu, string link, int gpusPerNode, params int[] nodes)
    {
        var device = BuiltinProfiles.Device(gpu);
        return new PlanRequest(ModelShape.Of(ModelConfig.Preset(model), model), WeightFormat.Parse(dtype), device, BuiltinProfiles.Link(link, device),
            gpusPerNode, nodes, [gpusPerNode == 8 ? 8 : 1]);
    }

    private static PlanRow Row(PlanRequest r, int nodes, long context, double hit = 0) =>
        Planner.Row(r, new Layout(nodes, r.GpusPerNode, r.TensorSizes![0]), context, hit);

    [Theory]
    // bench --config llama3-8b --gpus 1 (seventeenth round, call 2)
    [InlineData(1, 32768, "pass-kv", 1.230)]
    [InlineData(1, 131072, "pass-kv", 10.712)]
    // bench --one-rank-of 2,4: one GPU's share of a ring, its transfers echoed (seventeenth round, call 2)
    [InlineData(2, 32768, "pass-kv", 0.640)]
    [InlineData(2, 131072, "pass-kv", 5.346)]
    [InlineData(4, 32768, "pass-kv", 0.306)]
    [InlineData(4, 131072, "pass-kv", 2.723)]
    // bench --gpus 2, two H200s over NVLink, both rings (fourteenth round, call 2)
    [InlineData(2, 32768, "pass-q", 0.700)]
    [InlineData(2, 131072, "pass-kv", 5.635)]
    [InlineData(2, 131072, "pass-q", 5.722)]
    [InlineData(2, 32768, "pass-kv", 0.679)]
    public void PredictsThisProjectsH200TimesWithinTenPercent(int gpus, int context, string strategy, double measured)
    {
        var r = Request("llama3-8b", "bf16", "h200", "nvlink", gpus, 1);
        var row = Row(r, 1, context);
        double predicted = (strategy == "pass-q" ? row.PassQ : row.PassKv).Seconds;
        Assert.InRange(predicted / measured, 0.90, 1.10);
    }

    [Fact]
    public void PredictsDecodeOnOneAndTwoH200s()
    {
        // 9.24 ms a token on one H200 after 130,000 tokens (seventeenth round, call 3); 8.84 on two (fourteenth round).
        var one = Row(Request("llama3-8b", "bf16", "h200", "nvlink", 1, 1), 1, 130000);
        var two = Row(Request("llama3-8b", "bf16", "h200", "nvlink", 2, 1), 1, 130000);
        Assert.InRange(one.DecodeSeconds / 9.24e-3, 0.9, 1.1);
        Assert.InRange(two.DecodeSeconds / 8.84e-3, 0.9, 1.1);
    }

    [Theory]
    // Llama 3 405B, FP8, TP8 a node, RDMA: Table 6/7 (1 node 8K, 32K, 128K; CP2 and CP4 at 128K), section 4.2.1 (CP8 at
    // 128K: 5.85 s), section 4.2.3 (CP16 at 1M: 77 s).
    [InlineData(1, 8192, 1.740)]
    [InlineData(1, 32768, 7.658)]
    [InlineData(1, 131072, 42.010)]
    [InlineData(2, 8192, 0.999)]
    [InlineData(2, 32768, 4.015)]
    [InlineData(2, 131072, 21.042)]
    [InlineData(4, 131072, 10.950)]
    [InlineData(8, 131072, 5.850)]
    [InlineData(16, 1048576, 77.0)]
    public void ReproducesThePapersScalingWithinTwentyFivePercent(int nodes, int context, double measured)
    {
        var row = Row(Request("llama3-405b", "fp8", "h100-500w", "rdma400", 8, nodes), nodes, context);
        Assert.Equal("pass-kv", row.Choice.Strategy);
        Assert.InRange(row.PassKv.Seconds / measured, 0.75, 1.25);
        Assert.True(row.Memory.Fits);
    }

    [Fact]
    public void MissesThePapersSixteenNodesAt128K()
    {
        // 3.8 s measured; the model's 2.8 s lacks a fixed cost of its 15 ring steps a layer (docs/PERFORMANCE.md, "Planning").
        var row = Row(Request("llama3-405b", "fp8", "h100-500w", "rdma400", 8, 16), 16, 131072);
        Assert.InRange(row.PassKv.Seconds / 3.8, 0.70, 0.78);
    }

    [Fact]
    public void TcpAtThreeGbpsStillHidesPassKvUpToFourNodes()
    {
        // Section 4.2.1: ~3 GB/s a rank over 100 Gb/s TCP scaled as RDMA did up to 4 nodes at 128K.
        foreach (int nodes in new[] { 2, 4 })
        {
            var tcp = Row(Request("llama3-405b", "fp8", "h100-500w", "tcp100", 8, nodes), nodes, 131072);
            var rdma = Row(Request("llama3-405b", "fp8", "h100-500w", "rdma400", 8, nodes), nodes, 131072);
            Assert.Equal(0, tcp.PassKv.Exposed);
            Assert.Equal(rdma.PassKv.Seconds, tcp.PassKv.Seconds, 1e-9);
        }
        // On 16 nodes the same link no longer hides a 128K prefill's K and V.
        Assert.True(Row(Request("llama3-405b", "fp8", "h100-500w", "tcp100", 8, 16), 16, 131072).PassKv.Exposed > 0);
    }

    [Fact]
    public void PartialPrefillOnFourNodesSwitchesRingsAtAFewPercentMissRate()
    {
        // Table 4 (128,000 tokens on CP4): pass-Q faster at 1% and 2.5%, a tie at 5%, pass-KV from 10%. The heuristic picks
        // pass-Q at 2.5% and pass-KV from 3.25% on the planner's rates (docs/PERFORMANCE.md has the whole table).
        var r = Request("llama3-405b", "fp8", "h100-500w", "rdma400", 8, 4);
        foreach (var (miss, faster) in new[] { (0.01, "pass-q"), (0.025, "pass-q"), (0.10, "pass-kv"), (0.5, "pass-kv"), (1.0, "pass-kv") })
        {
            var row = Row(r, 4, 128000, 1 - miss);
            Assert.Equal(faster, row.Faster.Strategy);
            Assert.Equal(faster, row.Choice.Strategy);
        }
    }

    [Fact]
    public void LayoutsAreTheTensorGroupsTheEngineCanRun()
    {
        var device = BuiltinProfiles.Device("h100");
        var r = new PlanRequest(ModelShape.Of(ModelConfig.Preset("llama3-405b"), "405b"), WeightFormat.Fp8, device, device.Node, 8, [1, 2]);
        Assert.Equal(["CP8 x TP1", "CP4 x TP2", "CP2 x TP4", "CP1 x TP8", "CP16 x TP1", "CP8 x TP2", "CP4 x TP4", "CP2 x TP8"],
            Planner.Layouts(r).Select(l => l.ToString()));
        var split = Assert.Throws<SettingException>(() => Planner.Layouts(r with { TensorSizes = [3] }));
        Assert.Equal((Setting.TensorParallel, 3), (split.Setting, (int)split.Value!));
        Assert.Equal((1000, 0), Planner.Split(1000, 0));
        Assert.Equal((250, 750), Planner.Split(1000, 0.75));
        Assert.Equal(Setting.HitRate, Assert.Throws<SettingException>(() => Planner.Split(1000, 1)).Setting);
    }
}
