using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using LongCtx.Cuda.Ops;
using LongCtx.Cuda.Runtime;
using LongCtx.Quantization;
using LongCtx.Tensors;

namespace LongCtx.Cuda.Tools;

/// <summary>
/// What `longctx bench-gemm` measures on GPU 0: the projections of a model shape at a number of rows, each as a bf16 GEMM
/// (cuBLASLt) and as FP8 GEMMs on pre-quantised inputs (per row × per token; 128 × 128 blocks × per token and group;
/// each also with cuBLASLt's fast accumulation), and the input quantisation apart: milliseconds and TFLOP/s
/// (2·rows·k·n), random bf16 inputs and random codes, one warm-up and the mean of <c>repeat</c> timed calls.
/// </summary>
public static class GemmBenchmark
{
    /// <summary>A projection as y[rows, N] = x[rows, K] · W[N, K]ᵀ; q, k, v and gate, up are measured as the one GEMM each pair would be.</summary>
    public readonly record struct Shape(string Name, int K, int N);

    /// <summary>The 8B shape's projections (hidden 4096, 32/8 heads of 128, MLP 14336).</summary>
    public static readonly Shape[] Llama8B = [new("qkv", 4096, 6144), new("o", 4096, 4096), new("gate_up", 4096, 28672), new("down", 14336, 4096)];

    public static JsonObject Run(int rows, Shape[] shapes, int repeat, Action<string> note)
    {
        if (CudaBackend.DeviceCount() == 0) throw new LongCtxException("bench-gemm needs a CUDA GPU; none was found");
        var defaults = CudaSettings.FromEnvironment();
        using var promoted = new CudaBackend(0, defaults with { Runtime = defaults.Runtime with { Fp8FastAccumulation = false } });
        using var fast = new CudaBackend(0, defaults with { Runtime = defaults.Runtime with { Fp8FastAccumulation = true } });
        var points = new JsonArray();
        foreach (var s in shapes)
        {
            double flops = 2.0 * rows * s.K * s.N;
            using var x = (CudaTensor)Random(promoted, rows, s.K, 1);
            using var w = Random(promoted, s.N, s.K, 2);
            using var y = promoted.Allocate(DType.BF16, rows, s.N);
            var point = new JsonObject { ["shape"] = s.Name, ["rows"] = rows, ["k"] = s.K, ["n"] = s.N };
            // Each backend queues on its own stream: the one that ran is the one waited for.
            void Time(string key, Action run, CudaBackend? on = null)
            {
                var b = on ?? promoted;
                try
                {
                    run();
                    b.Synchronize();
                    var clock = Stopwatch.StartNew();
                    for (int i = 0; i < repeat; i++) run();
                    b.Synchronize();
                    double ms = clock.Elapsed.TotalMilliseconds / repeat;
                    point[$"{key}_ms"] = ms;
                    point[$"{key}_tflops"] = flops / (ms / 1e3) / 1e12;
                }
                catch (LongCtxException e)
                {
                    point[$"{key}_error"] = e.Message;
                    note($"{s.Name} {key}: {e.Message}");
                }
            }
            Time("bf16", () => promoted.Linear(x, w, null, y));
            foreach (bool blocks in new[] { false, true })
            {
                string kind = blocks ? "fp8_blocks" : "fp8_rows";
                var scheme = blocks ? new Fp8Activations(Fp8ActivationScaling.PerTokenGroup) : Fp8Activations.PerToken;
                var (codes, handle) = RandomCodes(s.N, s.K);
                try
                {
                    float[] scales = blocks ? Enumerable.Repeat(1e-3f, s.N / 128 * (s.K / 128)).ToArray() : Enumerable.Repeat(1e-3f, s.N).ToArray();
                    var host = new HostTensor("w", DType.F8E4M3, [s.N, s.K], handle.AddrOfPinnedObject())
                    {
                        Fp8 = new Fp8Linear(blocks ? Fp8WeightScaling.Block : Fp8WeightScaling.PerRow, scales, scheme),
                    };
                    using var w8 = (CudaTensor)promoted.LoadWeight(host);
                    CudaBackend.Fp8Input? a = null;
                    Time($"quantize_{(blocks ? "groups" : "rows")}", () => { a?.Dispose(); a = promoted.Quantize(x, scheme); });
                    if (a is not null)
                    {
                        Time(kind, () => promoted.Fp8Gemm(a, w8, (CudaTensor)y, null, accumulate: false));
                        Time($"{kind}_fast_accumulation", () => fast.Fp8Gemm(a, w8, (CudaTensor)y, null, accumulate: false), fast);
                        a.Dispose();
                    }
                }
                finally
                {
                    handle.Free();
                }
                GC.KeepAlive(codes);
            }
            points.Add((JsonNode)point);
            note($"{s.Name} [{rows}, {s.K}] x [{s.N}, {s.K}]: bf16 {point["bf16_tflops"]?.GetValue<double>():0} TFLOP/s, fp8 rows {point["fp8_rows_tflops"]?.GetValue<double>():0}, fp8 blocks {point["fp8_blocks_tflops"]?.GetValue<double>():0}");
        }
        return new JsonObject { ["device"] = promoted.Name, ["rows"] = rows, ["points"] = points };
    }

    // Random bf16 in [-2, 2): the power a GEMM draws (and so its clock under the limit) depends on the values.
    private static Tensor Random(CudaBackend b, int rows, int cols, int seed)
    {
        var t = b.Allocate(DType.BF16, rows, cols);
        int chunk = Math.Max(1, (1 << 22) / cols);
        var host = new float[(long)Math.Min(chunk, rows) * cols];
        var random = new Random(seed);
        for (int i = 0; i < host.Length; i++) host[i] = random.NextSingle() * 4 - 2;
        for (int start = 0; start < rows; start += chunk)
        {
            int n = Math.Min(chunk, rows - start);
            using var part = b.Upload<float>(host.AsSpan(0, n * cols), n, cols);
            b.Copy(part, t.SliceRows(start, n));
        }
        return t;
    }

    // Random e4m3 codes of magnitude up to 448 (0x7F and 0xFF, NaN, avoided), pinned for the upload.
    private static (byte[] Codes, GCHandle Handle) RandomCodes(int rows, int cols)
    {
        var codes = new byte[(long)rows * cols];
        new Random(rows + cols).NextBytes(codes);
        for (long i = 0; i < codes.Length; i++)
            if ((codes[i] & 0x7F) == 0x7F) codes[i] ^= 1;
        return (codes, GCHandle.Alloc(codes, GCHandleType.Pinned));
    }
}
