using System.CommandLine;
using LongCtx.ContextParallel;
using LongCtx.Model;
using LongCtx.Sampling;

namespace LongCtx.Cli;

/// <summary>Options shared by the commands that run a model: where it comes from, where it runs, how it samples.</summary>
internal sealed class CommonOptions
{
    public readonly Option<string?> Model = new("--model") { Description = "Hugging Face model directory (config.json, safetensors, tokenizer.json), or a repo id (org/name) in the Hugging Face cache" };
    public readonly Option<string?> Revision = new("--revision") { Description = "with a repo id: the branch, tag or commit in the cache (default main)" };
    public readonly Option<string?> Config = new("--config") { Description = "architecture preset for --load-format dummy without --model: tiny, llama3-8b, llama3-70b, qwen2.5-7b, qwen3-8b, mistral-7b, gemma2-9b, gemma3-12b, ..." };
    public readonly Option<string?> TokenizerPath = new("--tokenizer") { Description = "tokenizer.json or its directory (default: the model directory)" };
    public readonly Option<string> LoadFormat = new("--load-format") { Description = "auto (safetensors) or dummy (random weights of the architecture, no weight file read)", DefaultValueFactory = _ => "auto" };
    public readonly Option<string> Device = new("--device") { Description = "cpu or cuda", DefaultValueFactory = _ => "cpu" };
    public readonly Option<int?> Gpus = new("--gpus") { Description = "GPUs for --device cuda (each one a rank); default 1" };
    public readonly Option<int?> Ranks = new("--ranks") { Description = "context-parallel ranks: threads on the CPU (default 1); on GPUs default --gpus / --tensor-parallel, more share the GPUs (exact, slow: for studies)" };
    public readonly Option<int> TensorParallel = TensorParallelOption.Create();
    public readonly Option<int?> PrefillChunk = PrefillChunkOption.Create();
    public readonly Option<string> Strategy = new("--strategy") { Description = "dense, pass-kv, pass-q, auto (exact), or star, apb (approximate: see docs/APB.md)", DefaultValueFactory = _ => StrategyNames.Auto };
    public readonly Option<int?> Threads = ThreadsOption.Create();
    public readonly Option<double?> ComputeTflops = new("--compute-tflops") { Description = "attention TFLOP/s per rank for --strategy auto (default: measured)" };
    public readonly Option<double?> LinkBandwidth = new("--link-gb-per-s") { Description = "ring link bandwidth per rank in gigabytes per second, for --strategy auto (default: measured)" };
    // The option's old name: "gbps" reads as gigabits, but it always took gigabytes per second, so a script that passes
    // it keeps its meaning; hidden, and a note says the new name.
    public readonly Option<double?> LinkGbps = new("--link-gbps") { Hidden = true };
    public readonly Option<string?> Calibration = HeuristicRates.CreateOption();
    public readonly Option<int> MaxNewTokens = new("--max-new-tokens") { Description = "tokens to generate", DefaultValueFactory = _ => 32 };
    public readonly Option<float?> Temperature = new("--temperature") { Description = "0 for greedy (default: generation_config.json's, else 0)" };
    public readonly Option<float?> TopP = new("--top-p") { Description = "default: generation_config.json's, else 1" };
    public readonly Option<int?> TopK = new("--top-k") { Description = "0 for off (default: generation_config.json's, else 0)" };
    public readonly Option<int?> Seed = new("--seed");
    public readonly Option<bool> Json = new("--json") { Description = "print one JSON object instead of streaming text" };
    public readonly Option<string> Attention = AttentionOption.Create();
    public readonly PrecisionOptions Precision = new();
    public readonly Option<bool> Verbose = new("--verbose") { Description = "debug log on stderr: the pass-KV / pass-Q choice and its inputs, which attention implementation ran" };

    public void AddTo(Command command)
    {
        foreach (var o in new Option[] { Model, Revision, Config, TokenizerPath, LoadFormat, Device, Gpus, Ranks, TensorParallel, PrefillChunk, Strategy, Threads, ComputeTflops, LinkBandwidth, LinkGbps, Calibration,
                     MaxNewTokens, Temperature, TopP, TopK, Seed, Json, Attention, Verbose })
            command.Options.Add(o);
        foreach (var o in Precision.All) command.Options.Add(o);
    }

    /// <summary>The options that say which model runs where, without the sampling ones (a server takes those per request).</summary>
    public void AddServingTo(Command command)
    {
        foreach (var o in new Option[] { Model, Revision, Config, TokenizerPath, LoadFormat, Device, Gpus, Ranks, TensorParallel, PrefillChunk, Strategy, Threads, ComputeTflops, LinkBandwidth, LinkGbps, Calibration, Attention, Verbose })
            command.Options.Add(o);
        foreach (var o in Precision.All) command.Options.Add(o);
    }

    /// <summary>--link-gb-per-s, or its old name --link-gbps (with a note on stderr).</summary>
    public double? LinkGigabytesPerSecond(ParseResult r)
    {
        if (r.GetValue(LinkGbps) is not { } old) return r.GetValue(LinkBandwidth);
        if (r.GetValue(LinkBandwidth) is not null) throw new LongCtxException("give --link-gb-per-s once (--link-gbps is its old name)");
        Progress.Warn("note: --link-gbps is now --link-gb-per-s (gigabytes per second, as it always took)");
        return old;
    }

    /// <summary>The flags' sampling, the model's generation_config.json filling what they leave out (called once before
    /// loading, without it, so that bad flags fail fast).</summary>
    public SamplingOptions Sampling(ParseResult r, GenerationConfig? defaults = null)
    {
        var s = (defaults ?? GenerationConfig.None).Sampling(r.GetValue(Temperature), r.GetValue(TopP), r.GetValue(TopK), r.GetValue(Seed));
        s.Validate();
        if (r.GetValue(MaxNewTokens) < 0) throw new LongCtxException("--max-new-tokens must be 0 or more");
        return s;
    }
}
