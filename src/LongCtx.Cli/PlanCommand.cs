using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using LongCtx.Model;
using LongCtx.Planning;

namespace LongCtx.Cli;

/// <summary>
/// `longctx plan`: for a model, context lengths and a partial-prefill hit rate, predicts every CP × TP layout on 1..N
/// nodes from measured rates (a built-in GPU profile or a calibration file): time to first token with pass-KV and
/// pass-Q, the heuristic's pick, memory per GPU and whether it fits, how much of the time the link is exposed, and
/// decode time per token on the distributed cache. Nothing runs: it is the paper's cost model (docs/PERFORMANCE.md, "Planning").
/// </summary>
internal static class PlanCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "Hugging Face model directory (only its config.json is read)" };
        var config = new Option<string?>("--config") { Description = $"architecture preset: {string.Join(", ", ModelConfig.PresetNames)}" };
        var contexts = new Option<string>("--context") { Description = "context lengths in tokens, comma separated", DefaultValueFactory = _ => "131072" };
        var hitRate = new Option<string>("--hit-rate") { Description = "shares of the context already in the KV cache (partial prefill: a follow-up turn), comma separated; 0 = full prefill", DefaultValueFactory = _ => "0" };
        var gpu = new Option<string>("--gpu") { Description = $"built-in device profile: {string.Join(", ", BuiltinProfiles.Names)}", DefaultValueFactory = _ => "h100" };
        var calibration = new Option<string?>("--calibration") { Description = "calibration file written by bench --calibrate (replaces --gpu)" };
        var gpusPerNode = new Option<int>("--gpus-per-node") { Description = "GPUs in a node, joined by the device's node link", DefaultValueFactory = _ => 8 };
        var link = new Option<string>("--link") { Description = "link between nodes, per GPU: nvlink, rdma400, tcp100, calibrated (the calibration file's ring) or GB/s", DefaultValueFactory = _ => "rdma400" };
        var nodes = new Option<string>("--nodes") { Description = "node counts to plan, comma separated", DefaultValueFactory = _ => "1,2,4,8,16" };
        var tp = new Option<string?>("--tensor-parallel", "--tp") { Description = "tensor group sizes to plan, comma separated (default: every size the model and a node allow)" };
        var dtype = new Option<string>("--dtype") { Description = "weights: bf16, fp8 (row-wise FP8 MLPs, the rest bf16) or fp32", DefaultValueFactory = _ => "bf16" };
        var json = new Option<bool>("--json") { Description = "print one JSON object" };
        var command = new Command("plan", "Predict time to first token, memory and decode speed of every CP x TP layout from measured rates");
        foreach (var o in new Option[] { model, config, contexts, hitRate, gpu, calibration, gpusPerNode, link, nodes, tp, dtype, json }) command.Options.Add(o);
        command.SetAction(r =>
        {
            var (shape, request) = Request(r.GetValue(model), r.GetValue(config), r.GetValue(gpu)!, r.GetValue(calibration), r.GetValue(gpusPerNode),
                r.GetValue(link)!, r.GetValue(nodes)!, r.GetValue(tp), r.GetValue(dtype)!);
            var lengths = BenchCommand.Ints(r.GetValue(contexts)!, "--context").Select(c => (long)c).ToArray();
            var hits = HitRates(r.GetValue(hitRate)!);
            var rows = hits.SelectMany(h => Planner.Plan(request, lengths, h)).ToArray();
            if (r.GetValue(json)) Console.WriteLine(Json(request, rows).ToJsonString());
            else Print(request, rows);
            return 0;
        });
        return command;
    }

    private static (ModelShape, PlanRequest) Request(string? dir, string? preset, string gpu, string? calibration, int gpusPerNode, string link, string nodes, string? tp, string dtype)
    {
        if (dir is not null && preset is not null) throw new LongCtxException("give --model DIR or --config PRESET, not both");
        var config = dir is not null ? ModelConfig.Load(ModelDirectory.Resolve(dir))
            : ModelConfig.Preset(preset ?? throw new LongCtxException($"give --model DIR or --config PRESET ({string.Join(", ", ModelConfig.PresetNames)})"));
        var shape = ModelShape.Of(config, dir is not null ? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir))) : preset!);
        if (gpusPerNode < 1) throw new LongCtxException($"--gpus-per-node {gpusPerNode} must be 1 or more");
        var counts = BenchCommand.Ints(nodes, "--nodes");
        if (counts.Length == 0 || counts.Any(n => n < 1)) throw new LongCtxException($"--nodes {nodes}: node counts must be 1 or more");
        var device = calibration is not null ? CalibrationFile.Read(calibration) : BuiltinProfiles.Device(gpu);
        var request = new PlanRequest(shape, WeightFormat.Parse(dtype), device, BuiltinProfiles.Link(link, device), gpusPerNode, counts,
            tp is null ? null : BenchCommand.Ints(tp, "--tensor-parallel"));
        return (shape, request);
    }

    private static double[] HitRates(string list) =>
        list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(x =>
            double.TryParse(x, NumberStyles.Float, CultureInfo.InvariantCulture, out double h) ? h
                : throw new LongCtxException($"--hit-rate {list}: expected numbers from 0 to below 1, comma separated")).ToArray() is { Length: > 0 } rates
            ? rates : throw new LongCtxException("--hit-rate needs at least one rate");

    private static void Print(PlanRequest r, IReadOnlyList<PlanRow> rows)
    {
        Console.WriteLine($"{r.Model.Name}, {r.Format.Name} weights, on {r.Device.Name} ({r.Device.Source}), {r.GpusPerNode} a node, " +
                          $"between nodes {r.InterNode}");
        // The fastest layout that fits, for each context and node count.
        var best = rows.Where(x => x.Memory.Fits).GroupBy(x => (x.Context, x.CachedTokens, x.Layout.Nodes)).Select(g => g.MinBy(x => x.Chosen.Seconds)!).ToHashSet();
        var table = new List<string[]> { Header };
        foreach (var x in rows)
        {
            var m = x.Memory;
            table.Add([x.Context.ToString(CultureInfo.InvariantCulture), $"{x.NewTokens}/{x.CachedTokens}", x.Layout.Nodes.ToString(),
                best.Contains(x) ? $"{x.Layout} *" : x.Layout.ToString(), Seconds(x.PassKv.Seconds), Seconds(x.PassQ.Seconds), x.Choice.Strategy,
                $"{m.Total / 1e9:0.0}", $"{m.Weights / 1e9:0.0} + {m.Kv / 1e9:0.0} + {m.Activations / 1e9:0.0}", m.Fits ? "yes" : $"no (> {m.Capacity / 1e9:0})",
                $"{x.ExposedShare * 100:0.0}%", $"{x.DecodeSeconds * 1e3:0.0}"]);
        }
        var widths = Enumerable.Range(0, table[0].Length).Select(c => table.Max(row => row[c].Length)).ToArray();
        foreach (var (row, i) in table.Select((row, i) => (row, i)))
        {
            Console.WriteLine(string.Join("  ", row.Select((cell, c) => c is 0 or 4 or 5 or 7 or 11 ? cell.PadLeft(widths[c]) : cell.PadRight(widths[c]))).TrimEnd());
            if (i == 0) Console.WriteLine(string.Join("  ", widths.Select(w => new string('-', w))));
        }
        Console.WriteLine("*: the fastest layout that fits at that node count. heuristic: the paper's Algorithm 5 (with the All2All term)");
    }

    private static readonly string[] Header = ["context", "new/cached", "nodes", "layout", "pass-KV s", "pass-Q s", "heuristic", "GB/GPU", "= weights + KV + act.", "fits", "link exposed", "decode ms/tok"];

    private static string Seconds(double s) => s >= 100 ? $"{s:0}" : s >= 1 ? $"{s:0.00}" : $"{s:0.000}";

    private static JsonObject Json(PlanRequest r, IReadOnlyList<PlanRow> rows)
    {
        static JsonObject Time(PrefillTime p) => new()
        {
            ["ttft_s"] = Math.Round(p.Seconds, 6), ["gemm_s"] = Math.Round(p.Gemm, 6), ["attention_s"] = Math.Round(p.Attention, 6),
            ["link_exposed_s"] = Math.Round(p.Exposed, 6), ["all_reduce_s"] = Math.Round(p.AllReduce, 6), ["elementwise_s"] = Math.Round(p.Elementwise, 6),
        };
        var array = new JsonArray();
        foreach (var x in rows)
            array.Add((JsonNode)new JsonObject
            {
                ["context"] = x.Context, ["new_tokens"] = x.NewTokens, ["cached_tokens"] = x.CachedTokens, ["miss_rate"] = (double)x.NewTokens / x.Context,
                ["nodes"] = x.Layout.Nodes, ["gpus"] = x.Layout.Gpus, ["context_ranks"] = x.Layout.ContextRanks, ["tensor_ranks"] = x.Layout.TensorRanks,
                ["pass_kv"] = Time(x.PassKv), ["pass_q"] = Time(x.PassQ),
                ["heuristic"] = x.Choice.Strategy, ["faster"] = x.Faster.Strategy,
                ["heuristic_hide_threshold_tokens"] = Math.Round(x.Choice.HideThresholdTokens, 1), ["heuristic_miss_rate_threshold"] = Math.Round(x.Choice.MissRateThreshold, 6),
                ["memory_bytes"] = new JsonObject
                {
                    ["weights"] = Math.Round(x.Memory.Weights), ["kv"] = Math.Round(x.Memory.Kv), ["activations"] = Math.Round(x.Memory.Activations),
                    ["total"] = Math.Round(x.Memory.Total), ["capacity"] = Math.Round(x.Memory.Capacity),
                },
                ["fits"] = x.Memory.Fits, ["link_exposed_share"] = Math.Round(x.ExposedShare, 6), ["decode_ms_per_token"] = Math.Round(x.DecodeSeconds * 1e3, 4),
            });
        return new JsonObject
        {
            ["model"] = r.Model.Name, ["dtype"] = r.Format.Name, ["device"] = r.Device.Name, ["device_source"] = r.Device.Source,
            ["link"] = r.InterNode.Name, ["link_gbps"] = r.InterNode.BytesPerSecond / 1e9, ["gpus_per_node"] = r.GpusPerNode,
            ["rows"] = array,
        };
    }
}
