using System.CommandLine;
using System.Text.Json.Nodes;
using LongCtx.Cuda;
using LongCtx.Models;
using LongCtx.Tensors;
using Spectre.Console;

namespace LongCtx.Cli;

/// <summary>
/// `longctx bench-attention`: one attention call of random bf16 Q/K/V on GPU 0 through the backend's own
/// Attention entry (so the layout decomposition is part of what is measured), per context length, mask
/// and implementation: milliseconds (CUDA events), TFLOP/s, and cuDNN's relative error against the own
/// kernel (without it, each cuDNN call plan's against the first plan's). Masks: causal is one sequence attending to itself (S×S); none is the unmasked block a ring step
/// computes, S/2 queries after S/2 keys; decode is one query row after S keys (the decode kernel, reported
/// with the rate it reads K and V at, which bounds it). --dump writes the cuDNN run of the smallest context for
/// bench/gpu/check_attention.py to compare with torch SDPA.
/// </summary>
internal static class BenchAttentionCommand
{
    private static readonly string[] Masks = ["causal", "none", "decode"];

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
            DefaultValueFactory = _ => CudnnCallPlan.FromEnvironment().ToString(),
        };
        var dump = new Option<string?>("--dump") { Description = "safetensors file for the cuDNN run of the smallest context (q, k, v, o, lse); several masks get -MASK before the extension" };
        var json = new Option<bool>("--json") { Description = "print one JSON object" };
        var command = new Command("bench-attention", "Time one attention call on GPU 0: cuDNN fused SDPA against the own kernel");
        foreach (var o in new Option[] { contexts, heads, kvHeads, headDim, masks, implementations, calls, repeat, dump, json }) command.Options.Add(o);
        command.SetAction(r => Run(new Settings(Ints(r.GetValue(contexts)!, "--context"), r.GetValue(heads), r.GetValue(kvHeads), r.GetValue(headDim),
            List(r.GetValue(masks)!, "--mask", Masks), List(r.GetValue(implementations)!, "--attention", ["cudnn", "kernel"]),
            CallPlans(r.GetValue(calls)!), Math.Max(1, r.GetValue(repeat)), r.GetValue(dump), r.GetValue(json))));
        return command;
    }

    private sealed record Settings(int[] Contexts, int Heads, int KvHeads, int HeadDim, string[] Masks, string[] Implementations, CudnnCallPlan[] CallPlans, int Repeat, string? Dump, bool Json);

    private sealed record Point(int Context, string Mask, int QueryRows, int KeyRows, string Implementation, CudnnCallPlan? Calls, double Ms, double Tflops,
        double? OutputError, double? LseError, string? Note, double? KvTbPerSecond = null);

    private static int Run(Settings s)
    {
        if (s.Heads < 1 || s.KvHeads < 1 || s.Heads % s.KvHeads != 0) throw new LongCtxException($"--heads {s.Heads} must be a positive multiple of --kv-heads {s.KvHeads}");
        if (s.HeadDim < 16 || s.HeadDim % 16 != 0 || s.HeadDim > 256) throw new LongCtxException($"--head-dim {s.HeadDim}: use a multiple of 16 up to 256");
        if (s.Contexts.Any(c => c < 2)) throw new LongCtxException("--context values must be 2 or more");
        if (s.Dump is not null && Path.GetDirectoryName(Path.GetFullPath(s.Dump)) is { } dir && !Directory.Exists(dir))
            throw new LongCtxException($"--dump {s.Dump}: its directory does not exist");
        if (CudaBackend.DeviceCount() == 0) throw new LongCtxException("bench-attention needs a CUDA GPU; none was found");

        using var backend = new CudaBackend(0, AttentionImplementation.Kernel);
        var progress = new Progress(!s.Json);
        var points = new List<Point>();
        int smallest = s.Contexts.Min();
        foreach (int context in s.Contexts)
            foreach (string mask in s.Masks)
            {
                bool causal = mask == "causal", decode = mask == "decode";
                int sq = causal ? context : decode ? 1 : context / 2, skv = causal || decode ? context : context / 2;
                var queries = new TokenLayout(new int[sq], Enumerable.Range(causal ? 0 : skv, sq).ToArray());
                var keys = causal ? queries : new TokenLayout(new int[skv], Enumerable.Range(0, skv).ToArray());
                using var q = RandomTensor(backend, sq, s.Heads, s.HeadDim, seed: context);
                using var k = RandomTensor(backend, skv, s.KvHeads, s.HeadDim, seed: context + 1);
                using var v = RandomTensor(backend, skv, s.KvHeads, s.HeadDim, seed: context + 2);
                float scale = 1f / MathF.Sqrt(s.HeadDim);
                double flops = causal ? 2.0 * sq * skv * s.Heads * s.HeadDim : 4.0 * sq * skv * s.Heads * s.HeadDim;
                var results = new Dictionary<string, (Tensor O, Tensor Lse)>();
                try
                {
                    // The kernel first, then cuDNN once per call plan (row slices only matter to a causal block). Each cuDNN run is compared
                    // with the kernel's output, or without the kernel with the first plan's; the first plan's output is the one dumped.
                    var plans = causal ? s.CallPlans : s.CallPlans.DistinctBy(p => p.EngineConfig).ToArray();
                    // One query row is the decode kernel's whatever the mode: run it once.
                    var runs = decode ? [("kernel", (CudnnCallPlan?)null)] : s.Implementations.OrderByDescending(i => i == "kernel")
                        .SelectMany(i => i == "cudnn" ? plans.Select(p => (i, (CudnnCallPlan?)p)) : [(i, (CudnnCallPlan?)null)]);
                    foreach (var (implementation, callPlan) in runs)
                    {
                        bool first = !results.ContainsKey(implementation);
                        var (o, lse) = (backend.Allocate(backend.ActivationType, sq, s.Heads, s.HeadDim), backend.Allocate(DType.F32, sq, s.Heads));
                        if (first) results[implementation] = (o, lse);
                        backend.AttentionMode = implementation == "cudnn" ? AttentionImplementation.Cudnn : AttentionImplementation.Kernel;
                        if (callPlan is { } plan) backend.CudnnCalls = plan;
                        long cudnnBefore = backend.CudnnAttentionCalls;
                        try
                        {
                            backend.Attention(q, queries, k, v, keys, scale, o, lse); // warm-up: compiles the kernel or builds the cuDNN plans
                            backend.StartProfiling();
                            for (int i = 0; i < s.Repeat; i++) backend.Attention(q, queries, k, v, keys, scale, o, lse);
                            double ms = backend.StopProfiling().GetValueOrDefault("attention") / s.Repeat;
                            string? note = implementation == "cudnn" && backend.CudnnAttentionCalls == cudnnBefore
                                ? $"cuDNN did not run (the kernel did): {backend.CudnnRefusal ?? "the call was not eligible"}" : null;
                            var reference = results.GetValueOrDefault("kernel", first ? default : results["cudnn"]);
                            bool compared = implementation == "cudnn" && reference.O is not null;
                            double? kvRate = decode ? 2.0 * skv * s.KvHeads * s.HeadDim * 2 / (ms / 1e3) / 1e12 : null;
                            points.Add(new Point(context, mask, sq, skv, implementation, callPlan, ms, flops / (ms / 1e3) / 1e12,
                                compared ? RelativeError(backend, o, reference.O!) : null, compared ? RelativeError(backend, lse, reference.Lse!) : null, note, kvRate));
                            progress.Note($"{context} {mask} {implementation}{(callPlan is { } shown ? $" ({shown})" : "")}: {ms:0.00} ms");
                        }
                        finally
                        {
                            if (!first)
                            {
                                o.Dispose();
                                lse.Dispose();
                            }
                        }
                    }
                    if (s.Dump is not null && context == smallest && results.TryGetValue("cudnn", out var dumped))
                        Dump(backend, DumpPath(s.Dump, mask, s.Masks.Length), mask, scale, q, k, v, dumped.O, dumped.Lse);
                }
                finally
                {
                    foreach (var (o, lse) in results.Values)
                    {
                        o.Dispose();
                        lse.Dispose();
                    }
                }
            }
        Report(points, backend, s);
        return 0;
    }

    /// <summary>Uniform in [−2, 2): with scale 1/√d the scores spread over a few units, so softmax is neither flat nor one-hot.</summary>
    private static Tensor RandomTensor(CudaBackend backend, int rows, int heads, int d, int seed)
    {
        var t = backend.Allocate(backend.ActivationType, rows, heads, d);
        const int chunk = 4096;
        var host = new float[(long)Math.Min(chunk, rows) * heads * d];
        for (int start = 0; start < rows; start += chunk)
        {
            int n = Math.Min(chunk, rows - start);
            var random = new Random(seed * 7919 + start);
            for (long i = 0; i < (long)n * heads * d; i++) host[i] = random.NextSingle() * 4 - 2;
            using var part = backend.Upload<float>(host.AsSpan(0, n * heads * d), n, heads, d);
            backend.Copy(part, t.SliceRows(start, n));
        }
        return t;
    }

    /// <summary>‖a − b‖ / ‖b‖ over all elements, read back a slice of rows at a time.</summary>
    private static double RelativeError(CudaBackend backend, Tensor a, Tensor b)
    {
        double diff = 0, norm = 0;
        const int chunk = 4096;
        for (int start = 0; start < a.Rows; start += chunk)
        {
            int n = Math.Min(chunk, a.Rows - start);
            var x = new float[n * a.RowLength];
            var y = new float[n * a.RowLength];
            backend.Download<float>(a.SliceRows(start, n), x);
            backend.Download<float>(b.SliceRows(start, n), y);
            for (int i = 0; i < x.Length; i++)
            {
                diff += (double)(x[i] - y[i]) * (x[i] - y[i]);
                norm += (double)y[i] * y[i];
            }
        }
        return Math.Sqrt(diff / Math.Max(norm, 1e-30));
    }

    private static string DumpPath(string path, string mask, int masks) =>
        masks == 1 ? path : Path.Combine(Path.GetDirectoryName(path) ?? "", $"{Path.GetFileNameWithoutExtension(path)}-{mask}{Path.GetExtension(path)}");

    private static void Dump(CudaBackend backend, string path, string mask, float scale, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse)
    {
        var lseValues = new float[lse.Length];
        backend.Download<float>(lse, lseValues);
        SafetensorsWriter.Write(path,
        [
            ("q", DType.BF16, q.Shape, BFloat16Bytes(backend, q)),
            ("k", DType.BF16, k.Shape, BFloat16Bytes(backend, k)),
            ("v", DType.BF16, v.Shape, BFloat16Bytes(backend, v)),
            ("o", DType.BF16, o.Shape, BFloat16Bytes(backend, o)),
            ("lse", DType.F32, lse.Shape, System.Runtime.InteropServices.MemoryMarshal.AsBytes(lseValues.AsSpan()).ToArray()),
        ], new Dictionary<string, string> { ["mask"] = mask, ["scale"] = scale.ToString("R") });
    }

    // bf16 values read back as float are exact, so their top 16 bits are the bf16 bits.
    private static byte[] BFloat16Bytes(CudaBackend backend, Tensor t)
    {
        var values = new float[t.Length];
        backend.Download<float>(t, values);
        var bytes = new byte[values.Length * 2];
        for (int i = 0; i < values.Length; i++)
        {
            uint bits = BitConverter.SingleToUInt32Bits(values[i]) >> 16;
            bytes[2 * i] = (byte)bits;
            bytes[2 * i + 1] = (byte)(bits >> 8);
        }
        return bytes;
    }

    private static void Report(List<Point> points, CudaBackend backend, Settings s)
    {
        string shape = $"{s.Heads} query heads, {s.KvHeads} kv heads, d={s.HeadDim}";
        if (s.Json)
        {
            var arr = new JsonArray();
            foreach (var p in points)
                arr.Add((JsonNode)new JsonObject
                {
                    ["context"] = p.Context, ["mask"] = p.Mask, ["query_rows"] = p.QueryRows, ["key_rows"] = p.KeyRows, ["attention"] = p.Implementation, ["cudnn_calls"] = p.Calls?.ToString(),
                    ["ms"] = Math.Round(p.Ms, 4), ["tflops"] = Math.Round(p.Tflops, 1), ["kv_tb_per_s"] = p.KvTbPerSecond is { } rate ? Math.Round(rate, 3) : null,
                    ["output_relative_error"] = p.OutputError, ["lse_relative_error"] = p.LseError, ["note"] = p.Note,
                });
            Console.WriteLine(new JsonObject { ["device"] = backend.Name, ["cudnn"] = backend.CudnnVersion, ["shape"] = shape, ["points"] = arr }.ToJsonString());
            return;
        }
        Console.WriteLine($"{backend.Name}, cuDNN {backend.CudnnVersion ?? "not loaded"}, {shape}");
        var table = new Table().AddColumns("context", "mask", "Sq x Skv", "attention", "cuDNN calls", "ms", "TFLOP/s", "KV TB/s", "O rel. err", "LSE rel. err");
        foreach (var p in points)
            table.AddRow(p.Context.ToString(), p.Mask, $"{p.QueryRows}x{p.KeyRows}", p.Implementation, p.Calls?.ToString() ?? "", $"{p.Ms:0.000}", $"{p.Tflops:0.0}",
                p.KvTbPerSecond is { } rate ? $"{rate:0.00}" : "", p.OutputError is { } e ? $"{e:0.00e0}" : "", p.LseError is { } l ? $"{l:0.00e0}" : "");
        AnsiConsole.Write(table);
        foreach (var p in points.Where(p => p.Note is not null)) Console.WriteLine($"{p.Context} {p.Mask}: {p.Note}");
    }

    private static CudnnCallPlan[] CallPlans(string list)
    {
        var plans = list.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(p => CudnnCallPlan.Parse(p, "--cudnn-calls")).Distinct().ToArray();
        return plans.Length > 0 ? plans : throw new LongCtxException("--cudnn-calls is empty: give at least one plan, e.g. rows=auto");
    }

    private static int[] Ints(string list, string option)
    {
        try { return list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToArray(); }
        catch (FormatException) { throw new LongCtxException($"{option} {list}: expected comma-separated whole numbers"); }
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
