using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace LongCtx.Cli;

/// <summary>
/// `longctx bench-attention`: one attention call of random bf16 Q/K/V on GPU 0 per context length, mask and implementation
/// (LongCtx.Cuda's AttentionBenchmark measures): milliseconds, TFLOP/s and cuDNN's error against the own kernel.
/// </summary>
internal static class BenchAttentionCommand
{
    public static Command Create()
    {
        var contexts = new Option<string>("--context") { Description = "sequence lengths S, comma separated", DefaultValueFactory = _ => "8192" };
        var heads = new Option<int>("--heads") { Description = "query heads", DefaultValueFactory = _ => 32 };
        var kvHeads = new Option<int>("--kv-heads") { Description = "key/value heads (grouped-query attention)", DefaultValueFactory = _ => 8 };
        var headDim = new Option<int>("--head-dim") { DefaultValueFactory = _ => 128 };
        var masks = new Option<string>("--mask") { Description = "causal (S queries, S keys), none (S/2 queries after S/2 keys: a ring step's unmasked block) and/or decode (1 query after S keys: the decode kernel, with its KV read rate)", DefaultValueFactory = _ => "causal,none" };
        var implementations = new Option<string>("--attention") { Description = "cudnn and/or kernel; with both, cuDNN's error against the kernel is reported", DefaultValueFactory = _ => "cudnn,kernel" };
        var repeat = new Option<int>("--repeat") { Description = "timed calls per point after one warm-up (the mean counts)", DefaultValueFactory = _ => 3 };
        var calls = new Option<string>("--cudnn-calls")
        {
            Description = "how blocks are cut into cuDNN calls, plans separated by ';' to compare: rows=R|auto (most rows per causal call, 0: one), engine=E (engine configuration index)",
            DefaultValueFactory = _ => Devices.DefaultCudnnCalls,
        };
        var windows = new Option<string>("--window")
        {
            Description = "sliding windows W for the causal and decode masks, comma separated (0: none), e.g. 0,1024 for a global and a local layer of Gemma 3",
            DefaultValueFactory = _ => "0",
        };
        var dump = new Option<string?>("--dump") { Description = "safetensors file for the cuDNN run of the smallest context (q, k, v, o, lse); several masks get -MASK before the extension" };
        var json = new Option<bool>("--json") { Description = "print one JSON object" };
        var command = new Command("bench-attention", "Time one attention call on GPU 0: cuDNN fused SDPA against the own kernel");
        foreach (var o in new Option[] { contexts, heads, kvHeads, headDim, masks, windows, implementations, calls, repeat, dump, json }) command.Options.Add(o);
        command.SetAction(r => Run(new Settings(BenchCommand.Ints(r.GetValue(contexts)!, "--context"), r.GetValue(heads), r.GetValue(kvHeads), r.GetValue(headDim),
            List(r.GetValue(masks)!, "--mask", ["causal", "none", "decode"]), BenchCommand.Ints(r.GetValue(windows)!, "--window"), List(r.GetValue(implementations)!, "--attention", ["cudnn", "kernel"]),
            CallPlans(r.GetValue(calls)!), Math.Max(1, r.GetValue(repeat)), r.GetValue(dump), r.GetValue(json))));
        return command;
    }

    private sealed record Settings(int[] Contexts, int Heads, int KvHeads, int HeadDim, string[] Masks, int[] Windows, string[] Implementations, string[] CallPlans,
        int Repeat, string? Dump, bool Json);

    private static int Run(Settings s)
    {
        if (s.Heads < 1 || s.KvHeads < 1 || s.Heads % s.KvHeads != 0) throw new LongCtxException($"--heads {s.Heads} must be a positive multiple of --kv-heads {s.KvHeads}");
        if (s.HeadDim < 16 || s.HeadDim % 16 != 0 || s.HeadDim > 256) throw new LongCtxException($"--head-dim {s.HeadDim}: use a multiple of 16 up to 256");
        if (s.Contexts.Any(c => c < 2)) throw new LongCtxException("--context values must be 2 or more");
        if (s.Windows.Length == 0 || s.Windows.Any(w => w < 0)) throw new LongCtxException("--window: give windows of 1 or more, or 0 for none");
        if (s.Dump is not null && Path.GetDirectoryName(Path.GetFullPath(s.Dump)) is { } dir && !Directory.Exists(dir))
            throw new LongCtxException($"--dump {s.Dump}: its directory does not exist");
        var progress = new Progress(!s.Json);
        var result = Devices.BenchAttention(s.Contexts, s.Heads, s.KvHeads, s.HeadDim, s.Masks, s.Implementations, s.CallPlans, s.Repeat, s.Dump, s.Windows.Distinct().ToArray(), progress.Note);
        Report(result, s.Json);
        return 0;
    }

    private static void Report(JsonObject result, bool json)
    {
        var points = result["points"]!.AsArray().Select(p => p!.AsObject()).ToList();
        static double? Number(JsonObject p, string key) => p[key]?.GetValue<double>();
        if (json)
        {
            foreach (var p in points)
            {
                p["ms"] = Math.Round(Number(p, "ms")!.Value, 4);
                p["tflops"] = Math.Round(Number(p, "tflops")!.Value, 1);
                if (Number(p, "kv_tb_per_s") is { } rate) p["kv_tb_per_s"] = Math.Round(rate, 3);
            }
            Console.WriteLine(result.ToJsonString());
            return;
        }
        Console.WriteLine($"{result["device"]}, cuDNN {(string?)result["cudnn"] ?? "not loaded"}, {result["shape"]}");
        var table = new Table().AddColumns("context", "mask", "window", "Sq x Skv", "attention", "cuDNN calls", "ms", "TFLOP/s", "KV TB/s", "O rel. err", "LSE rel. err");
        foreach (var p in points)
            table.AddRow($"{p["context"]}", $"{p["mask"]}", $"{p["window"]}", $"{p["query_rows"]}x{p["key_rows"]}", $"{p["attention"]}", (string?)p["cudnn_calls"] ?? "",
                $"{Number(p, "ms"):0.000}", $"{Number(p, "tflops"):0.0}", Number(p, "kv_tb_per_s") is { } rate ? $"{rate:0.00}" : "",
                Number(p, "output_relative_error") is { } e ? $"{e:0.00e0}" : "", Number(p, "lse_relative_error") is { } l ? $"{l:0.00e0}" : "");
        AnsiConsole.Write(table);
        foreach (var p in points.Where(p => p["note"] is not null)) Console.WriteLine($"{p["context"]} {p["mask"]}: {p["note"]}");
    }

    private static string[] CallPlans(string list)
    {
        var plans = list.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return plans.Length > 0 ? plans : throw new LongCtxException("--cudnn-calls is empty: give at least one plan, e.g. rows=auto");
    }

    private static string[] List(string list, string option, string[] allowed)
    {
        var items = list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var item in items)
            if (!allowed.Contains(item)) throw new LongCtxException($"{option} {item} is unknown: use {string.Join(" and/or ", allowed)}");
        if (items.Length == 0) throw new LongCtxException($"{option} is empty: use {string.Join(" and/or ", allowed)}");
        return items.Distinct().ToArray();
    }
}
