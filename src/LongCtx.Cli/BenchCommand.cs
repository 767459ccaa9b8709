using System.CommandLine;
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using System.Text.Json.Nodes;
using LongCtx.Approximate;
using LongCtx.Comm;
using LongCtx.ContextParallel;
using LongCtx.Engine;
using LongCtx.Model;
using LongCtx.Sampling;
using Spectre.Console;

namespace LongCtx.Cli;

/// <summary>
/// `longctx bench`: time to first token of long random prompts — one prefill per context length, on the
/// given rank counts — with model TFLOP/s, MFU, parallel efficiency against the first rank count, and
/// (on GPUs) where the time went: GEMMs, attention, and communication the overlap did not hide. A rank timed alone
/// (--one-rank-of) is reported as what it is, a projection of the N-rank run without communication; an approximate
/// strategy by its time to first token and its error, not by the exact model's FLOPs.
/// </summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "Hugging Face model directory (its config.json; weights as --load-format says)" };
        var config = new Option<string?>("--config") { Description = "architecture preset: tiny, llama3-8b, llama3-70b, qwen2.5-7b, qwen3-8b, mistral-7b, gemma2-9b, gemma3-12b, ..." };
        var loadFormat = new Option<string>("--load-format") { Description = "dummy (random weights) or auto", DefaultValueFactory = _ => "dummy" };
        var layers = new Option<int?>("--layers") { Description = "run only the first L layers (shorter runs; MFU counts what ran)" };
        var contexts = new Option<string>("--context") { Description = "prompt lengths, comma separated", DefaultValueFactory = _ => "8192" };
        var device = new Option<string>("--device") { Description = "cpu or cuda", DefaultValueFactory = _ => "cuda" };
        var gpus = new Option<string>("--gpus") { Description = "rank counts to run, comma separated (GPUs, or threads on the CPU); efficiency is against the first", DefaultValueFactory = _ => "1" };
        var ranks = new Option<string?>("--ranks") { Description = "context-parallel rank counts to run on the --gpus GPUs (then one number); ranks beyond the GPUs share them (exact, slow)" };
        var oneRankOf = new Option<string?>("--one-rank-of") { Description = "rank counts N, comma separated: run one rank of N alone on one GPU (or CPU), its peers echoing its transfers: a projection of an N-GPU run without the communication (rank 0; the last rank, which has the most work, for star and apb)" };
        var tensor = TensorParallelOption.Create();
        var prefillChunk = PrefillChunkOption.Create();
        var strategy = new Option<string>("--strategy") { Description = "pass-kv, pass-q, auto or dense (1 rank); several, comma separated, run one after another at each point", DefaultValueFactory = _ => StrategyNames.Auto };
        var repeat = new Option<int>("--repeat") { Description = "timed prefills per point (the best counts)", DefaultValueFactory = _ => 1 };
        var warmup = new Option<int>("--warmup") { Description = "untimed prefills at each context before the timed ones (they build the cuDNN plans for its shapes)", DefaultValueFactory = _ => 1 };
        var decode = new Option<int>("--decode-steps") { Description = "after each timed prefill, decode this many tokens on the distributed cache and report ms per step and per token", DefaultValueFactory = _ => 0 };
        var batch = new Option<int>("--batch") { Description = "sequences decoded together (each with the same prompt prefilled); needs --decode-steps", DefaultValueFactory = _ => 1 };
        var anchor = new Option<int?>("--anchor-tokens") { Description = "star and apb: anchor length l_a (default: block length for star, block/4 for apb)" };
        var passing = new Option<int?>("--passing-tokens") { Description = "apb: entries per KV head each rank passes on, l_p (default: block/8)" };
        var evenBlocks = new Option<bool>("--even-blocks") { Description = "star and apb: split the document into equal blocks, as the papers do (default: blocks that give every rank the same work)" };
        var temperature = new Option<float>("--temperature") { Description = "decode steps sample at this temperature (0: greedy); the tokens are drawn on the GPU", DefaultValueFactory = _ => 0f };
        var topP = new Option<float>("--top-p") { Description = "decode steps: nucleus sampling with this mass", DefaultValueFactory = _ => 1f };
        var topK = new Option<int>("--top-k") { Description = "decode steps: sample among the k most likely tokens (0: off)", DefaultValueFactory = _ => 0 };
        var promptLogprobs = new Option<int?>("--prompt-logprobs") { Description = "timed prefills also compute every prompt token's logprob and the N most likely tokens a position (echo with logprobs: an evaluation's loglikelihood)" };
        var profile = new Option<bool>("--profile") { Description = "also run a profiled prefill for the time split (GPU)" };
        var json = new Option<bool>("--json") { Description = "print one JSON object" };
        var missRates = new Option<string?>("--miss-rate") { Description = "partial prefills: for each rate m, comma separated, the first (1 - m) of each --context is cached first (untimed) and the last m timed against it" };
        var calibrate = new Option<string?>("--calibrate") { Description = "measure the rates longctx plan and --strategy auto use (GEMM, attention, memory, decode, the ring link with 2+ ranks) and write them to FILE; no prefill is timed" };
        var calibration = HeuristicRates.CreateOption();
        var plot = new Option<string?>("--plot") { Description = "also draw the points as an SVG file: TTFT against context per strategy and rank count, and the time split of profiled points" };
        var from = new Option<string?>("--from") { Description = "with --plot: draw the points of an earlier bench --json output instead of running" };
        var attention = AttentionOption.Create();
        var precision = new PrecisionOptions();
        var errorVsBf16 = new Option<bool>("--error-vs-bf16") { Description = "with FP8 weights, KV or attention: also prefill the first --context's prompt with the bf16 model (the same weights before quantisation) and report the last logits' relative error and top-1 agreement" };
        var command = new Command("bench", "Measure prefill time to first token on long prompts");
        foreach (var o in new Option[] { model, config, loadFormat, layers, contexts, device, gpus, ranks, oneRankOf, tensor, prefillChunk, strategy, repeat, warmup, decode, batch, temperature, topP, topK, promptLogprobs, anchor, passing, evenBlocks, profile, missRates, calibrate, calibration, attention, errorVsBf16, json, plot, from }) command.Options.Add(o);
        foreach (var o in precision.All) command.Options.Add(o);
        command.SetAction(r => r.GetValue(from) is { } earlier ? PlotFrom(earlier, r.GetValue(plot)) : Run(r.GetValue(model), r.GetValue(config), r.GetValue(loadFormat)!, r.GetValue(layers), Ints(r.GetValue(contexts)!, "--context"),
            r.GetValue(device)!, Layouts(r.GetValue(gpus)!, r.GetValue(ranks), r.GetValue(oneRankOf), r.GetValue(tensor)), r.GetValue(tensor), r.GetValue(prefillChunk), r.GetValue(strategy)!.Split(',', StringSplitOptions.TrimEntries).Select(StrategyNames.Validate).ToArray(), Math.Max(1, r.GetValue(repeat)),
            r.GetValue(warmup), r.GetValue(decode), r.GetValue(batch), Sampling(r.GetValue(temperature), r.GetValue(topP), r.GetValue(topK)), r.GetValue(promptLogprobs), (r.GetValue(anchor), r.GetValue(passing), r.GetValue(evenBlocks)), r.GetValue(profile), r.GetValue(attention)!,
            precision.Read(r, r.GetValue(device)!), r.GetValue(errorVsBf16), r.GetValue(json), r.GetValue(plot), MissRates(r.GetValue(missRates)), r.GetValue(calibrate), HeuristicRates.Resolve(null, null, r.GetValue(calibration))));
        return command;
    }

    /// <summary>
    /// One measurement; Ranks × Tensor ranks ran it (context-parallel × tensor-parallel), or only rank TimedRank of Ranks
    /// did, alone (a projection). Tflops and Mfu count the exact model's FLOPs: null for an approximate strategy, and Mfu
    /// for a device whose peak is unknown. Cached tokens of a partial prefill were in the KV before the timed prefill.
    /// </summary>
    private sealed record Point(int Ranks, int Tensor, int Context, string Strategy, double TtftMs, double? Tflops, double? Mfu, Dictionary<string, double>? Split,
        double? LogitsError = null, bool? Top1Agrees = null, BatchDecode? Decode = null, int[]? BlockTokens = null, int? TimedRank = null, int Cached = 0, StrategyChoice? Choice = null)
    {
        /// <summary>A rank timed alone in the place of one of several: no communication in its time.</summary>
        public bool Projection => TimedRank is not null && Ranks > 1;
    }

    /// <summary>Batched decode: one step gives every sequence of the batch a token; Split is a profiled step's time split.</summary>
    private sealed record BatchDecode(int Batch, double MsPerStep, Dictionary<string, double>? Split = null)
    {
        public double MsPerToken => MsPerStep / Batch;
    }

    private static int Run(string? dir, string? preset, string loadFormat, int? layers, int[] contexts, string device, Layout[] layouts, int tensor,
        int? prefillChunk, string[] strategies, int repeat, int warmup, int decodeSteps, int batch, SamplingOptions sampling, int? promptLogprobs, (int? Anchor, int? Passing, bool EvenBlocks) lengths, bool profile, string attention,
        PrecisionChoice precision, bool errorVsBf16, bool json, string? plot, double[] missRates, string? calibrate, HardwareRates? rates)
    {
        if (plot is not null && OutputFile.Problem(plot) is { } problem) throw new LongCtxException($"--plot {plot}: {problem}");
        if (calibrate is not null && OutputFile.Problem(calibrate) is { } calibrateProblem) throw new LongCtxException($"--calibrate {calibrate}: {calibrateProblem}");
        if (lengths.Anchor < 0 || lengths.Passing < 0) throw new LongCtxException("--anchor-tokens and --passing-tokens must be 0 or more");
        if (warmup < 0) throw new LongCtxException($"--warmup {warmup} must be 0 or more");
        if (decodeSteps < 0) throw new LongCtxException("--decode-steps must be 0 or more");
        if (batch < 1) throw new LongCtxException($"--batch {batch} must be 1 or more");
        if (batch > 1 && decodeSteps == 0) throw new LongCtxException($"--batch {batch} batches decode steps: give --decode-steps N too");
        Devices.Check(device, attention);
        foreach (int c in contexts)
        {
            if (c < 1) throw new LongCtxException($"--context {c} must be 1 or more");
            if (missRates.Any(m => (int)Math.Round(m * c) == 0)) throw new LongCtxException($"--miss-rate leaves no new token of --context {c}: use a larger rate");
        }
        if (calibrate is not null && layouts.Length > 1) throw new LongCtxException("--calibrate measures one layout: give --gpus (or --ranks) one number");
        if (strategies.Contains(StrategyNames.Auto) && layouts.Any(l => l.Echoed))
            throw new LongCtxException("--one-rank-of needs a --strategy (pass-kv, pass-q, star or apb): auto would measure the echoed copies as the ring's link");
        if (dir is not null) dir = ModelDirectory.Resolve(dir);
        var cfg = dir is not null ? ModelConfig.Load(dir) : ModelConfig.Preset(preset ?? throw new LongCtxException("give --model DIR or --config PRESET"));
        if (layers is { } l)
        {
            if (l < 1 || l > cfg.NumLayers) throw new LongCtxException($"--layers {l}: the model has {cfg.NumLayers}");
            cfg = cfg with { NumLayers = l };
        }
        foreach (int c in contexts)
            if (c > cfg.MaxPositionEmbeddings) throw new LongCtxException($"--context {c} is longer than the model allows ({cfg.MaxPositionEmbeddings})");
        var progress = new Progress(!json);
        var bf16Cfg = cfg;
        cfg = precision.Apply(cfg);
        using var weights = progress.Run("Preparing weights", () => loadFormat == "dummy" ? ModelWeights.Dummy(cfg, seed: 0, kvCache: precision.KvCache) : ModelWeights.Load(dir!, cfg, precision.KvCache));
        var dtypes = PrecisionReport.Of(weights, device, precision.Fp8Attention);
        // The bf16 model the FP8 settings are measured against: the same weights before quantisation, a bf16 cache and attention.
        bool fp8 = cfg.Quantization is not null || weights.KvCache is not null || precision.Fp8Attention;
        if (errorVsBf16 && (!fp8 || bf16Cfg.Quantization is not null))
            throw new LongCtxException(bf16Cfg.Quantization is not null ? "--error-vs-bf16 needs a bf16 model to compare with; an FP8 checkpoint has none (use --quantization fp8 on its bf16 original)"
                : "--error-vs-bf16 compares an FP8 setting with bf16: give --quantization fp8, --kv-cache-dtype fp8 or --attention-dtype fp8");
        using var bf16Weights = !errorVsBf16 ? null : cfg.Quantization is null && weights.KvCache is null ? null
            : progress.Run("Preparing the bf16 weights to compare with", () => loadFormat == "dummy" ? ModelWeights.Dummy(bf16Cfg, seed: 0) : ModelWeights.Load(dir!, bf16Cfg, KvCacheDType.Activation));

        var points = new List<Point>();
        string deviceName = "";
        string? attentionReport = null;
        // A rank timed alone is the one with the most work: the rings' ranks have equal shares; an approximate strategy's
        // last rank attends to every passing block (APB) and carries the anchor copy (both). Exact and approximate
        // strategies of one layout so time different ranks, each its own group.
        foreach (var (ranks, gpus, echoed) in layouts)
            foreach (var run in strategies.GroupBy(name => echoed ? StrategyNames.IsApproximate(name) ? ranks - 1 : 0 : (int?)null))
            {
                int? timed = run.Key;
                using var group = progress.Run(echoed ? $"Loading the model as rank {timed} of {ranks}" : $"Loading the model onto {ranks * tensor} rank(s)",
                    () => Group(cfg, weights, device, ranks, gpus, timed, tensor, attention, precision.Fp8Attention));
                deviceName = group.Device;
                using var engine = new InferenceEngine(cfg, group, rates) { PrefillChunkTokens = prefillChunk };
                using var bf16 = new Bf16Reference(() => progress.Run("Loading the bf16 model to compare with",
                    () => Group(bf16Cfg, bf16Weights ?? weights, device, ranks, gpus, null, tensor, attention, fp8Attention: false)), bf16Cfg, prefillChunk);
                if (calibrate is not null)
                {
                    Calibrate(engine, group, cfg, weights, device, calibrate, json);
                    return 0;
                }
                // Compiles kernels (the decode ones too, when decode is timed), fills the pool, measures rates for auto.
                // With --miss-rate the warm-up is a partial prefill too, so that the first point does not pay for its first run.
                foreach (var s in run)
                    Prefill(engine, 1024, s, decodeSteps: Math.Min(decodeSteps, 2), batch: batch, sampling: sampling, cached: missRates.Any(m => m < 1) ? 512 : 0);
                foreach (var (context, cached, strategy) in contexts.SelectMany(c => missRates.SelectMany(m => run.Select(s => (c, c - (int)Math.Round(m * c), s)))))
                {
                    var approximate = lengths is (null, null, false) ? null
                        : new ApproximateOptions(ApproximateDefaults.QueryTokens(context), lengths.Anchor, lengths.Passing, EvenBlocks: lengths.EvenBlocks);
                    if (decodeSteps > 0 && device == "cuda") KvMemory.CheckFits(group, cfg, context + decodeSteps, batch, weights.KvCache is not null);
                    double best = double.MaxValue;
                    string used = strategy;
                    StrategyChoice? choice = null;
                    float[] logits = [];
                    int[]? blocks = null;
                    BatchDecode? decoded = null;
                    // A context's first prefill also builds a cuDNN plan per new block shape (tens of ms each) and compiles the
                    // kernels it meets first (token_logprobs.cu with --prompt-logprobs): not part of a warm TTFT.
                    for (int i = 0; i < warmup; i++) Prefill(engine, context, strategy, approximate, promptLogprobs: promptLogprobs, cached: cached);
                    for (int i = 0; i < repeat; i++)
                    {
                        var (ms, s, lastLogits, layout, chosen) = Prefill(engine, context, strategy, approximate, i == repeat - 1 ? decodeSteps : 0, batch, d => decoded = d, sampling: sampling, promptLogprobs: promptLogprobs, cached: cached,
                            keepLogits: errorVsBf16 && context == contexts[0]);
                        best = Math.Min(best, ms);
                        used = s;
                        choice = chosen;
                        logits = lastLogits;
                        blocks = layout is null ? null : Enumerable.Range(0, layout.Ranks).Select(layout.BlockLength).ToArray();
                    }
                    // An approximate run is reported with its error against exact attention on the same prompt (a real one: an echoed
                    // rank's peers hold its own keys, so its answer means nothing).
                    double? error = null;
                    bool? top1 = null;
                    if (errorVsBf16 && !echoed && context == contexts[0])
                    {
                        (error, top1) = bf16.Engine.CompareWithExact(RandomPrompt(engine, context), logits);
                    }
                    else if (StrategyNames.IsApproximate(used) && !echoed)
                    {
                        var (e, t) = engine.CompareWithExact(RandomPrompt(engine, context), logits);
                        (error, top1) = (e, t);
                    }
                    Dictionary<string, double>? split = null;
                    if (profile && device == "cuda")
                    {
                        // A second prefill (and decode) with events around every operation: they cost host time, so the
                        // timed figures above come from the unprofiled runs and only the split from this one.
                        var profiler = new TimeSplit(group);
                        var (ms, _, _, _, _) = Prefill(engine, context, strategy, approximate, decodeSteps, batch, d => decoded = decoded! with { Split = d.Split }, profiler, sampling, cached: cached);
                        split = profiler.PrefillSplit(ms);
                    }
                    // The exact model's FLOPs: an approximate strategy skips part of the attention, so it gets no rate.
                    double? flopsPerSecond = StrategyNames.IsApproximate(used) ? null : ModelFlops(cfg, context, cached) / (best / 1e3);
                    // An echoed rank stands for `ranks` GPUs, each doing its share.
                    double? mfu = device == "cuda" && PeakFlops.DenseBf16(deviceName) is { } gpuPeak ? flopsPerSecond / (gpuPeak.FlopsPerSecond * (echoed ? ranks : gpus)) : null;
                    var point = new Point(echoed ? ranks : group.ContextRanks, tensor, context, used, best, flopsPerSecond / 1e12, mfu, split, error, top1, decoded, blocks, timed, cached, choice);
                    points.Add(point);
                    progress.Note($"{RanksText(point)}{(point.Projection ? "" : " rank(s)")}, {context} tokens{(cached > 0 ? $" ({cached} cached)" : "")}, {used}: {best:0} ms");
                }
                attentionReport = group.Run(rt => rt.Backend.Info.AttentionReport())[0];
            }
        var peak = device == "cuda" ? PeakFlops.DenseBf16(deviceName) : null;
        var results = ToJson(points, cfg, deviceName, peak, attentionReport, dtypes, errorVsBf16 ? "bf16" : "exact");
        if (json) Console.WriteLine(results.ToJsonString());
        else Report(points, cfg, deviceName, peak, attentionReport, dtypes, errorVsBf16 ? "bf16" : "exact");
        if (plot is not null) File.WriteAllText(plot, BenchPlot.Render(results, "bench"));
        return 0;
    }

    /// <summary>
    /// One prefill of a random prompt through the engine loop, timed to its first token (drawn where the logits are: the
    /// time to first token); then, if asked, decode steps for a batch of sequences holding that prompt (the others
    /// prefilled untimed, one a step). With <paramref name="cached"/> tokens, a partial prefill: the prompt's first
    /// tokens form the sequence's KV first, untimed, by pass-KV (a full prefill's ring), and the rest is timed against them.
    /// Returns the time, the strategy that ran and the automatic choice, the last row's logits of an approximate run or
    /// where <paramref name="keepLogits"/> says (for their error against exact attention or the bf16 model) and its blocks.
    /// </summary>
    private static (double Ms, string Strategy, float[] Logits, ContextBlocks? Blocks, StrategyChoice? Choice) Prefill(InferenceEngine engine, int tokens, string strategy,
        ApproximateOptions? approximate = null, int decodeSteps = 0, int batch = 1, Action<BatchDecode>? decoded = null, TimeSplit? profiler = null,
        SamplingOptions? sampling = null, int? promptLogprobs = null, int cached = 0, bool keepLogits = false)
    {
        var ids = RandomPrompt(engine, tokens);
        // Prefills alone in their steps, so the first step times the prefill; then a step is a decode step of the batch.
        var loop = new EngineLoop(engine, new PrefillFirst(decodeInSameStep: false));
        GenerationRequest Request(int b) => new(ids, decodeSteps + 1, (sampling ?? new SamplingOptions()) with { Seed = b }, strategy,
            KeepLastLogits: keepLogits || StrategyNames.IsApproximate(strategy) ? 1 : 0, Approximate: approximate)
        { PromptLogprobs = b == 0 ? promptLogprobs : null };
        var requests = new List<RequestState>();
        try
        {
            Sequence? prefix = null;
            if (cached > 0)
            {
                var cache = loop.Admit(new GenerationRequest(ids[..cached], 0, new SamplingOptions(), engine.Ranks == 1 ? StrategyNames.Dense : StrategyNames.PassKv, KeepLastLogits: 0));
                loop.Step(tokens);
                if (cache.Error is { } cacheError) ExceptionDispatchInfo.Capture(cacheError).Throw(); // the loop released its KV
                prefix = cache.Sequence;
            }
            requests.Add(loop.Admit(Request(0) with { Resume = prefix }));
            profiler?.Start();
            var clock = Stopwatch.StartNew();
            loop.Step(tokens);
            double ms = clock.Elapsed.TotalMilliseconds;
            profiler?.EndPrefill();
            var first = requests[0];
            if (first.Error is { } error) ExceptionDispatchInfo.Capture(error).Throw();
            if (decodeSteps > 0)
            {
                for (int b = 1; b < batch; b++) requests.Add(loop.Admit(Request(b)));
                while (loop.Waiting.Count > 0) loop.Step(tokens);
                // Steps on the distributed cache: each token's KV lands round-robin, attention merges by LSE; the
                // tokens are drawn on the GPU (only they come back), as a server does for requests without logprobs.
                profiler?.Start();
                var decodeClock = Stopwatch.StartNew();
                for (int i = 0; i < decodeSteps; i++) loop.Step(tokens);
                double msPerStep = decodeClock.Elapsed.TotalMilliseconds / decodeSteps;
                if (requests.FirstOrDefault(r => r.Error is not null)?.Error is { } failed) ExceptionDispatchInfo.Capture(failed).Throw();
                decoded?.Invoke(new BatchDecode(batch, msPerStep, profiler?.DecodeSplit(msPerStep, decodeSteps)));
            }
            return (ms, first.Strategy, first.PromptLogits, first.Blocks, first.Choice);
        }
        finally
        {
            foreach (var r in requests) engine.Release(r.Sequence);
        }
    }

    private static double[] MissRates(string? list)
    {
        if (list is null) return [1];
        var rates = list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(x =>
            double.TryParse(x, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double m) && m > 0 && m <= 1 ? m
                : throw new LongCtxException($"--miss-rate {list}: expected rates above 0 and at most 1, comma separated")).ToArray();
        return rates.Length > 0 ? rates : throw new LongCtxException("--miss-rate needs at least one rate");
    }

    /// <summary>bench --calibrate: a short decode timed through the engine loop, then the rates (<see cref="BenchCalibration"/>), written by the lead rank.</summary>
    private static void Calibrate(InferenceEngine engine, IRankGroup group, ModelConfig cfg, ModelWeights weights, string device, string path, bool json)
    {
        double msPerStep = 0;
        Prefill(engine, BenchCalibration.DecodeContext, engine.Ranks == 1 ? StrategyNames.Dense : StrategyNames.PassKv, decodeSteps: 16, decoded: d => msPerStep = d.MsPerStep);
        var profile = BenchCalibration.Measure(group, cfg, weights, msPerStep, device == Devices.Cuda);
        if (group.LeadRank == 0) BenchCalibration.Write(profile, path, json);
    }

    private static SamplingOptions Sampling(float temperature, float topP, int topK)
    {
        var s = new SamplingOptions(temperature, topP, topK);
        s.Validate();
        return s;
    }

    /// <summary>The same random prompt for a given length every time, so exact and approximate runs see one input.</summary>
    private static int[] RandomPrompt(InferenceEngine engine, int tokens)
    {
        var random = new Random(tokens);
        return Enumerable.Range(0, tokens).Select(_ => random.Next(engine.Config.VocabSize)).ToArray();
    }

    /// <summary>
    /// Model FLOPs of a prefill of the tokens after the first <paramref name="cached"/>: 2 per weight per new token for the
    /// layers, attention 4·q_dim per visible (query, key) pair of the new rows: i + 1 keys for row i on a causal layer
    /// (S²/2 pairs in all), min(i + 1, W) on a sliding-window layer; and the LM head of the last row.
    /// </summary>
    public static double ModelFlops(ModelConfig c, long tokens, long cached = 0)
    {
        double perLayer = (double)c.HiddenSize * c.QDim * 2 + (double)c.HiddenSize * c.KvDim * 2 + 3.0 * c.HiddenSize * c.IntermediateSize;
        double pairs = 0;
        for (int l = 0; l < c.NumLayers; l++)
            pairs += Pairs(c.WindowOf(l), tokens) - Pairs(c.WindowOf(l), cached);
        return 2 * perLayer * c.NumLayers * (tokens - cached) + 4.0 * pairs * c.QDim + 2.0 * c.HiddenSize * c.VocabSize;

        // The visible pairs of the first n rows.
        static double Pairs(int? window, long n) => window is int w && w < n ? w * (w + 1) / 2.0 + (double)(n - w) * w : 0.5 * n * n;
    }

    /// <summary>`bench --from RESULTS.json --plot FILE.svg`: an earlier run's points drawn, nothing run.</summary>
    private static int PlotFrom(string results, string? plot)
    {
        if (plot is null) throw new LongCtxException("--from draws an earlier bench --json output: give --plot FILE.svg too");
        if (OutputFile.Problem(plot) is { } problem) throw new LongCtxException($"--plot {plot}: {problem}");
        JsonNode node;
        try { node = JsonNode.Parse(File.ReadAllText(results)) ?? throw new LongCtxException($"--from {results}: empty"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new LongCtxException($"--from {results}: cannot read ({e.Message})"); }
        catch (System.Text.Json.JsonException e) { throw new LongCtxException($"--from {results}: not JSON ({e.Message.Split('\n')[0]})"); }
        File.WriteAllText(plot, BenchPlot.Render(node, results));
        return 0;
    }

    /// <summary>Efficiency counts every rank (a GPU each): TTFT × ranks of the context's first point against this one's. A
    /// projection leaves the communication out, so it bounds the real efficiency from above, and shows at most 100%.</summary>
    private static double Efficiency(List<Point> points, Point p)
    {
        static double RankMs(Point p) => p.TtftMs * p.Ranks * p.Tensor;
        double e = RankMs(points.First(b => b.Context == p.Context)) / RankMs(p);
        return p.Projection ? Math.Min(1, e) : e;
    }

    /// <summary>The report as JSON; errorAgainst names what logits_relative_error compares with (exact attention, or the bf16 model).</summary>
    private static JsonObject ToJson(List<Point> points, ModelConfig cfg, string device, (string Product, double FlopsPerSecond)? peak, string? attention,
        JsonObject dtypes, string errorAgainst)
    {
        var arr = new JsonArray();
        foreach (var p in points)
        {
            var o = new JsonObject
            {
                ["ranks"] = p.Ranks, ["tensor_parallel"] = p.Tensor, ["context"] = p.Context, ["strategy"] = p.Strategy, ["ttft_ms"] = Math.Round(p.TtftMs, 2),
                ["model_tflops"] = p.Tflops is { } t ? Math.Round(t, 2) : null, ["mfu"] = p.Mfu is { } m ? Math.Round(m, 4) : null,
                [p.Projection ? "parallel_efficiency_at_most" : "parallel_efficiency"] = Math.Round(Efficiency(points, p), 4),
            };
            if (p.Projection)
            {
                o["projection"] = $"rank {p.TimedRank} of {p.Ranks} timed alone, its peers echoing its transfers: the {p.Ranks}-rank run without communication";
                o["timed_rank"] = p.TimedRank;
            }
            if (p.Cached > 0) o["cached_tokens"] = p.Cached; // a partial prefill: ttft_ms times the context's other tokens
            if (p.Choice is { } c) o["auto_choice"] = c.ToString(); // the heuristic's inputs and thresholds
            if (p.Decode is { } dt)
            {
                o["batch"] = dt.Batch;
                o["decode_ms_per_step"] = Math.Round(dt.MsPerStep, 3);
                o["decode_ms_per_token"] = Math.Round(dt.MsPerToken, 3);
            }
            if (p.LogitsError is { } e)
            {
                o["logits_relative_error"] = Math.Round(e, 6);
                o["top1_agrees"] = p.Top1Agrees;
            }
            if (p.BlockTokens is { } bt) o["block_tokens"] = new JsonArray(bt.Select(b => (JsonNode)b).ToArray());
            if (p.Split is { } s) o["time_split_ms"] = SplitJson(s);
            if (p.Decode?.Split is { } ds) o["decode_split_ms_per_step"] = SplitJson(ds);
            arr.Add((JsonNode)o);
        }
        var root = new JsonObject { ["model"] = cfg.ToString(), ["device"] = device, ["attention"] = attention, ["dtypes"] = dtypes };
        if (device.StartsWith("cuda", StringComparison.Ordinal))
        {
            root["peak_product"] = peak?.Product ?? "unknown";
            root["peak_dense_bf16_tflops"] = peak is { } known ? known.FlopsPerSecond / 1e12 : null;
        }
        root["points"] = arr;
        if (points.Any(p => p.LogitsError is not null)) root["logits_error_against"] = errorAgainst;
        return root;
    }

    private static void Report(List<Point> points, ModelConfig cfg, string device, (string Product, double FlopsPerSecond)? peak, string? attention, JsonObject dtypes, string errorAgainst)
    {
        bool onGpu = device.StartsWith("cuda", StringComparison.Ordinal);
        bool anySplit = points.Any(p => p.Split is not null), anyError = points.Any(p => p.LogitsError is not null);
        var table = new Table().AddColumns("ranks", "context", "strategy", "TTFT (s)", "TFLOP/s", "MFU", "par. eff.");
        bool anyDecode = points.Any(p => p.Decode is not null);
        if (anyDecode) table.AddColumns("batch", "decode ms/step", "decode ms/token");
        if (anyError) table.AddColumns($"logits err vs {errorAgainst}", "top-1");
        if (anySplit) table.AddColumn("GEMM / attn / comm / kernels / other (ms)");
        foreach (var p in points)
        {
            string split = p.Split is { } s
                ? $"{s.GetValueOrDefault("gemm"):0} / {s.GetValueOrDefault("attention"):0} / {s.GetValueOrDefault("communication"):0} / {s.GetValueOrDefault("kernels"):0} / {s.GetValueOrDefault("other"):0}"
                : "";
            string mfu = p.Mfu is { } m ? $"{m:P1}" : onGpu && p.Tflops is not null ? "unknown" : "-";
            var cells = new List<string> { RanksText(p), p.Cached > 0 ? $"{p.Context} ({p.Cached} cached)" : p.Context.ToString(), p.Strategy, $"{p.TtftMs / 1e3:0.000}", p.Tflops is { } t ? $"{t:0.0}" : "-",
                mfu, $"{(p.Projection ? "≤" : "")}{Efficiency(points, p):P0}" };
            if (anyDecode) cells.AddRange(p.Decode is { } dt ? [dt.Batch.ToString(), $"{dt.MsPerStep:0.00}", $"{dt.MsPerToken:0.00}"] : ["", "", ""]);
            if (anyError) cells.AddRange([p.LogitsError is { } e ? $"{e:0.00e0}" : "", p.Top1Agrees is { } a ? (a ? "yes" : "no") : ""]);
            if (anySplit) cells.Add(split);
            table.AddRow(cells.Select(Markup.Escape).ToArray());
        }
        Console.WriteLine($"{cfg}\n{device}\n{string.Join(", ", dtypes.Select(d => $"{d.Key} {d.Value}"))}");
        if (attention is not null) Console.WriteLine(attention);
        AnsiConsole.Write(table);
        if (points.Any(p => p.Projection))
            Console.WriteLine("\"rank r of N alone\": that rank timed by itself, its peers echoing its transfers: a projection of the N-GPU run " +
                "without communication. Its TTFT is a lower bound of the real run's, its rates and efficiency upper bounds.");
        if (points.Any(p => p.Tflops is null))
            Console.WriteLine("star and apb skip part of the attention: they are reported by time to first token and error, not by the exact model's FLOP/s.");
        if (onGpu && peak is null)
            Console.WriteLine($"MFU unknown: no dense bf16 peak on record for {device} (H100 SXM/PCIe/NVL, H200, H20, A100, L40S and B200 are).");
    }

    private static JsonObject SplitJson(Dictionary<string, double> split) =>
        new(split.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)Math.Round(kv.Value, 3))));

    /// <summary>"4", "2x4" for 2 context-parallel ranks of 4 tensor-parallel ranks each, or "rank 3 of 4 alone" for a projection.</summary>
    private static string RanksText(Point p) => p.Projection ? $"rank {p.TimedRank} of {p.Ranks} alone" : p.Tensor == 1 ? p.Ranks.ToString() : $"{p.Ranks}x{p.Tensor}";

    /// <summary>Context ranks on that many GPUs; Echoed: one of them alone on one (<see cref="Comm.EchoPeers"/>).</summary>
    private readonly record struct Layout(int Ranks, int Gpus, bool Echoed = false);

    /// <summary>
    /// The layouts to run: each --gpus count split into tensor-parallel groups of --tensor-parallel, every --ranks count
    /// on the one --gpus count, or rank 0 of each --one-rank-of count alone.
    /// </summary>
    private static Layout[] Layouts(string gpus, string? ranks, string? oneRankOf, int tensor)
    {
        if (tensor < 1) throw new LongCtxException($"--tensor-parallel {tensor} must be 1 or more");
        var g = Ints(gpus, "--gpus");
        if (oneRankOf is not null)
        {
            if (ranks is not null || tensor != 1 || g is not [1])
                throw new LongCtxException("--one-rank-of runs one rank on one GPU: leave out --ranks, --tensor-parallel and --gpus");
            return Ints(oneRankOf, "--one-rank-of").Select(n => n >= 1 ? new Layout(n, 1, Echoed: true)
                : throw new LongCtxException($"--one-rank-of {oneRankOf}: rank counts must be 1 or more")).ToArray();
        }
        if (ranks is null)
            return g.Select(n => n % tensor == 0 ? new Layout(n / tensor, n)
                : throw new LongCtxException($"--tensor-parallel {tensor} must divide every --gpus count ({n} does not)")).ToArray();
        if (g.Length != 1) throw new LongCtxException($"--ranks runs every rank count on the same GPUs: give --gpus one number, not {gpus}");
        return Ints(ranks, "--ranks").Select(n => new Layout(n, g[0])).ToArray();
    }

    /// <summary>The ranks of one layout; with <paramref name="timed"/>, that rank of them alone, its peers echoing it.</summary>
    private static IRankGroup Group(ModelConfig cfg, ModelWeights weights, string device, int ranks, int gpus, int? timed, int tensor, string attention, bool fp8Attention)
    {
        if (timed is { } rank) return Devices.Echoed(cfg, weights, device, ranks, rank, attention, fp8Attention);
        // One process per rank (longctx launch, or a launcher per network namespace): CPU ranks over TCP.
        if (LaunchEnvironment.FromEnvironment() is { } launch)
            return device == Devices.Cpu ? Devices.Process(cfg, weights, launch, device, attention, threads: null, tensor)
                : throw new LongCtxException("bench runs GPU ranks in one process (--gpus N): leave WORLD_SIZE unset, or use --device cpu");
        return Devices.Local(cfg, weights, device, ranks, gpus, tensor, attention, fp8Attention: fp8Attention);
    }

    /// <summary>The bf16 model --error-vs-bf16 compares with: loaded once a layout, at the first point that needs it.</summary>
    private sealed class Bf16Reference(Func<IRankGroup> load, ModelConfig config, int? prefillChunk) : IDisposable
    {
        private IRankGroup? _group;
        private InferenceEngine? _engine;

        public InferenceEngine Engine => _engine ??= new InferenceEngine(config, _group = load()) { PrefillChunkTokens = prefillChunk };

        public void Dispose()
        {
            _engine?.Dispose();
            _group?.Dispose();
        }
    }

    public static int[] Ints(string list, string option)
    {
        try { return list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToArray(); }
        catch (FormatException) { throw new LongCtxException($"{option} {list}: expected comma-separated whole numbers"); }
        catch (OverflowException) { throw new LongCtxException($"{option} {list}: each number must be at most {int.MaxValue}"); }
    }
}
