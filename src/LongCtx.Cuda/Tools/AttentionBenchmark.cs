using System.Text.Json.Nodes;
using LongCtx.Backends;
using LongCtx.Cuda.Attention;
using LongCtx.Cuda.Ops;
using LongCtx.Model;
using LongCtx.Tensors;

namespace LongCtx.Cuda.Tools;

/// <summary>
/// What `longctx bench-attention` measures: context lengths, the head shape, masks, sliding windows (0: none; they apply to
/// the causal and decode masks), implementations and cuDNN call plans.
/// </summary>
public sealed record AttentionBenchmarkSpec(int[] Contexts, int Heads, int KvHeads, int HeadDim, string[] Masks, string[] Implementations, string[] CallPlans,
    int Repeat, string? Dump, int[]? Windows = null);

/// <summary>
/// One attention call of random bf16 Q/K/V on GPU 0 through the backend's own Attention entry (so the layout
/// decomposition is part of what is measured), per context length, mask and implementation: milliseconds (CUDA events),
/// TFLOP/s, and cuDNN's relative error against the own kernel (without it, each cuDNN call plan's against the first
/// plan's). Masks: causal is one sequence attending to itself (S×S); none is the unmasked block a ring step computes,
/// S/2 queries after S/2 keys; decode is one query row after S keys (the decode kernel, reported with the rate it reads
/// K and V at, which bounds it). A window W makes causal a sliding-window layer's call (each query over its last W keys:
/// a local layer of Gemma 3 beside a global one) and decode read only the last W keys; FLOPs count the visible pairs.
/// The dump writes the cuDNN run of the smallest context for bench/gpu/check_attention.py.
/// </summary>
public static class AttentionBenchmark
{
    public static readonly string[] Masks = ["causal", "none", "decode"];
    public static readonly string[] Implementations = ["cudnn", "kernel"];

    /// <summary>The call plan the environment sets (or the default), in its text form.</summary>
    public static string DefaultCallPlan => CudaSettings.FromEnvironment().Attention.CudnnCalls.ToString();

    /// <summary>
    /// Runs the points and returns {"device", "cudnn", "shape", "points": [{context, mask, query_rows, key_rows, attention,
    /// cudnn_calls, ms, tflops, kv_tb_per_s, output_relative_error, lse_relative_error, note}]} (figures unrounded).
    /// </summary>
    public static JsonObject Run(AttentionBenchmarkSpec s, Action<string> note)
    {
        var callPlans = s.CallPlans.Select(p => CudnnCallPlan.Parse(p)).Distinct().ToArray();
        if (CudaBackend.DeviceCount() == 0) throw new LongCtxException("bench-attention needs a CUDA GPU; none was found");
        using var backend = new CudaBackend(0, AttentionImplementation.Kernel);
        var points = new JsonArray();
        int smallest = s.Contexts.Min();
        foreach (int context in s.Contexts)
            foreach (string mask in s.Masks)
                foreach (int window in mask == "none" ? [0] : s.Windows ?? [0])
                {
                    bool causal = mask == "causal", decode = mask == "decode";
                    int sq = causal ? context : decode ? 1 : context / 2, skv = causal || decode ? context : context / 2;
                    var queries = new TokenLayout(new int[sq], Enumerable.Range(causal ? 0 : skv, sq).ToArray());
                    var keys = causal ? queries : new TokenLayout(new int[skv], Enumerable.Range(0, skv).ToArray());
                    using var q = RandomTensor(backend, sq, s.Heads, s.HeadDim, seed: context);
                    using var k = RandomTensor(backend, skv, s.KvHeads, s.HeadDim, seed: context + 1);
                    using var v = RandomTensor(backend, skv, s.KvHeads, s.HeadDim, seed: context + 2);
                    float scale = 1f / MathF.Sqrt(s.HeadDim);
                    var rule = new AttentionRule(scale, window > 0 ? window : null);
                    // Visible (query, key) pairs: all of them, the causal triangle, or each query's last W keys.
                    int seen = decode && window > 0 ? Math.Min(window, skv) : skv;
                    double pairs = !causal ? (double)sq * seen : window > 0 ? CausalWindowPairs(sq, window) : 0.5 * sq * skv;
                    double flops = 4.0 * pairs * s.Heads * s.HeadDim;
                    var results = new Dictionary<string, (Tensor O, Tensor Lse)>();
                    try
                    {
                        // The kernel first, then cuDNN once per call plan (row slices only matter to a causal block). Each cuDNN run is compared
                        // with the kernel's output, or without the kernel with the first plan's; the first plan's output is the one dumped.
                        var plans = causal ? callPlans : callPlans.DistinctBy(p => p.EngineConfig).ToArray();
                        // One query row is the decode kernel's whatever the mode: run it once.
                        var runs = decode ? [("kernel", (CudnnCallPlan?)null)] : s.Implementations.OrderByDescending(i => i == "kernel")
                            .SelectMany(i => i == "cudnn" ? plans.Select(p => (i, (CudnnCallPlan?)p)) : [(i, (CudnnCallPlan?)null)]);
                        foreach (var (implementation, callPlan) in runs)
                        {
                            bool first = !results.ContainsKey(implementation);
                            var (o, lse) = (backend.Allocate(backend.ActivationType, sq, s.Heads, s.HeadDim), backend.Allocate(DType.F32, sq, s.Heads));
                            if (first) results[implementation] = (o, lse);
                            var settings = backend.AttentionSettings with { Implementation = implementation == "cudnn" ? AttentionImplementation.Cudnn : AttentionImplementation.Kernel };
                            backend.AttentionSettings = callPlan is { } plan ? settings with { CudnnCalls = plan } : settings;
                            long cudnnBefore = backend.AttentionPaths.Cudnn.Calls;
                            try
                            {
                                backend.Attention(q, queries, k, v, keys, rule, o, lse); // warm-up: compiles the kernel or builds the cuDNN plans
                                backend.StartProfiling();
                                for (int i = 0; i < s.Repeat; i++) backend.Attention(q, queries, k, v, keys, rule, o, lse);
                                double ms = backend.StopProfiling().GetValueOrDefault("attention") / s.Repeat;
                                string? refused = implementation == "cudnn" && backend.AttentionPaths.Cudnn.Calls == cudnnBefore
                                    ? $"cuDNN did not run (the kernel did): {backend.AttentionPaths.Cudnn.Refusal ?? "the call was not eligible"}" : null;
                                var reference = results.GetValueOrDefault("kernel", first ? default : results["cudnn"]);
                                bool compared = implementation == "cudnn" && reference.O is not null;
                                double? kvRate = decode ? 2.0 * seen * s.KvHeads * s.HeadDim * 2 / (ms / 1e3) / 1e12 : null;
                                points.Add((JsonNode)new JsonObject
                                {
                                    ["context"] = context, ["mask"] = mask, ["window"] = window > 0 ? window : null, ["query_rows"] = sq, ["key_rows"] = skv, ["attention"] = implementation,
                                    ["cudnn_calls"] = callPlan?.ToString(), ["ms"] = ms, ["tflops"] = flops / (ms / 1e3) / 1e12, ["kv_tb_per_s"] = kvRate,
                                    ["output_relative_error"] = compared ? RelativeError(backend, o, reference.O!) : null,
                                    ["lse_relative_error"] = compared ? RelativeError(backend, lse, reference.Lse!) : null, ["note"] = refused,
                                });
                                note($"{context} {mask}{(window > 0 ? $" window {window}" : "")} {implementation}{(callPlan is { } shown ? $" ({shown})" : "")}: {ms:0.00} ms");
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
                        if (s.Dump is not null && context == smallest && window == 0 && results.TryGetValue("cudnn", out var dumped))
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
        return new JsonObject
        {
            ["device"] = backend.Name, ["cudnn"] = backend.AttentionPaths.Cudnn.Version,
            ["shape"] = $"{s.Heads} query heads, {s.KvHeads} kv heads, d={s.HeadDim}", ["points"] = points,
        };
    }

    /// <summary>Σ_i min(i + 1, W) over n queries of one causal sequence.</summary>
    private static double CausalWindowPairs(long n, long window) =>
        n <= window ? n * (n + 1) / 2.0 : window * (window + 1) / 2.0 + (double)(n - window) * window;

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
}
