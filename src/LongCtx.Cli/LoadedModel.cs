using System.CommandLine;
using LongCtx.Comm;
using LongCtx.Engine;
using LongCtx.Model;
using LongCtx.Text;

namespace LongCtx.Cli;

/// <summary>A model ready to run: its config, weights (from safetensors or random), tokenizer and engine over the ranks.</summary>
internal sealed class LoadedModel : IDisposable
{
    private LoadedModel(string name, string? directory, ModelConfig config, ModelWeights weights, string? tokenizerPath, InferenceEngine engine, bool dummy,
        Progress progress, System.Text.Json.Nodes.JsonObject precision)
    {
        Precision = precision;
        Name = name;
        Directory = directory;
        TokenizerPath = tokenizerPath;
        Config = config;
        Generation = GenerationConfig.Load(directory, config.VocabSize);
        Weights = weights;
        Engine = engine;
        Dummy = dummy;
        // Loaded on first use: a run with --prompt-ids needs no tokenizer, so one that does not load must not stop it.
        _tokenizer = new(() =>
        {
            if (tokenizerPath is null) return (null, null);
            try { return (progress.Run("Loading tokenizer", () => Tokenizer.Load(tokenizerPath)), null); }
            catch (LongCtxException e) { return (null, e); }
        });
    }

    /// <summary>The model directory's name, or the preset's: what the server calls the model.</summary>
    public string Name { get; }
    /// <summary>The model directory (a repo id resolved to its snapshot in the Hugging Face cache); null for a preset.</summary>
    public string? Directory { get; }
    public ModelConfig Config { get; }
    /// <summary>generation_config.json's stop ids and sampling defaults (the server's requests can take them from here too).</summary>
    public GenerationConfig Generation { get; }
    /// <summary>The ids that end generation: config.json's and generation_config.json's eos_token_id.</summary>
    public int[] StopTokens => Generation.StopTokens(Config);
    public ModelWeights Weights { get; }

    private readonly Lazy<(Tokenizer? Tokenizer, LongCtxException? Error)> _tokenizer;
    private bool _warned;

    /// <summary>The tokenizer, or null when there is none or it does not load (then said once on stderr: output falls back to ids).</summary>
    public Tokenizer? Tokenizer
    {
        get
        {
            var (tokenizer, error) = _tokenizer.Value;
            if (error is not null && !_warned)
            {
                _warned = true;
                Progress.Warn($"note: no text output, the tokenizer did not load: {error.Message}");
            }
            return tokenizer;
        }
    }
    /// <summary>Where the tokenizer came from (its tokenizer_config.json names the chat template).</summary>
    public string? TokenizerPath { get; }
    public InferenceEngine Engine { get; }
    public bool Dummy { get; }
    /// <summary>The number formats that run: weights, the projections' inputs, the KV cache, attention (<see cref="PrecisionReport"/>).</summary>
    public System.Text.Json.Nodes.JsonObject Precision { get; }

    /// <summary>Which attention implementation ran (rank 0's account: every rank runs the same calls), for --verbose; null on the CPU.</summary>
    public string? AttentionReport() => Engine.AttentionReport();

    public Tokenizer RequireTokenizer() => _tokenizer.Value.Tokenizer ?? throw _tokenizer.Value.Error
        ?? new LongCtxException("no tokenizer: give --tokenizer PATH (tokenizer.json or its directory), or use --prompt-ids");

    /// <param name="modelArgument">the model given as an argument (`serve MODEL`), in place of --model</param>
    public static LoadedModel Load(ParseResult r, CommonOptions o, Progress progress, string? modelArgument = null)
    {
        string device = r.GetValue(o.Device)!;
        string attention = r.GetValue(o.Attention)!;
        Devices.Check(device, attention);
        if (device == Devices.Cpu && r.GetValue(o.Gpus) is not null) throw new LongCtxException("--gpus needs --device cuda (on the CPU, ranks are threads: --ranks N)");
        string format = r.GetValue(o.LoadFormat)!;
        if (format is not ("auto" or "safetensors" or "dummy"))
            throw new LongCtxException($"--load-format {format} is unknown: use auto, safetensors or dummy");
        bool dummy = format == "dummy";
        string? modelArg = r.GetValue(o.Model);
        if (modelArgument is not null && modelArg is not null && modelArgument != modelArg)
            throw new LongCtxException($"the model is given twice ({modelArgument} and --model {modelArg}): give it once");
        modelArg ??= modelArgument;
        string? dir = modelArg is null ? null : ModelDirectory.Resolve(modelArg, r.GetValue(o.Revision));
        string? preset = r.GetValue(o.Config);

        var precision = o.Precision.Read(r, device);
        ModelConfig config;
        if (dir is not null) config = ModelConfig.Load(dir);
        else if (dummy && preset is not null) config = ModelConfig.Preset(preset);
        else throw new LongCtxException(dummy ? "--load-format dummy needs --model DIR (for config.json) or --config PRESET" : "--model DIR is required");
        config = precision.Apply(config);

        var weights = progress.Run(dummy ? "Building random weights" : $"Mapping weights from {dir}",
            () => dummy ? ModelWeights.Dummy(config, seed: 0, kvCache: precision.KvCache) : ModelWeights.Load(dir!, config, precision.KvCache));
        string? tokenizerPath = r.GetValue(o.TokenizerPath) ?? (dir is not null && File.Exists(Path.Combine(dir, "tokenizer.json")) ? dir : null);

        int gpus = r.GetValue(o.Gpus) ?? 1;
        int tensor = r.GetValue(o.TensorParallel);
        int? ranks = r.GetValue(o.Ranks);
        var rates = HeuristicRates.Resolve(r.GetValue(o.ComputeTflops), o.LinkGigabytesPerSecond(r), r.GetValue(o.Calibration));
        var launch = LaunchEnvironment.FromEnvironment();
        IRankGroup group = launch is not null ? ProcessGroup(r, o, config, weights, device, attention, launch, progress, precision.Fp8Attention)
            : device == Devices.Cuda
            ? progress.Run($"Loading the model onto {gpus} GPU(s)", () => Devices.Local(config, weights, device, ranks, gpus, tensor, attention, fp8Attention: precision.Fp8Attention))
            : Devices.Local(config, weights, device, ranks, gpus, tensor, attention, r.GetValue(o.Threads));
        if (r.GetValue(o.Verbose) && launch is null && device == Devices.Cuda && group.ContextRanks * group.TensorRanks is var all && all > gpus)
            Console.Error.WriteLine($"debug: {all} ranks share {gpus} GPU(s) round-robin and talk through device copies (NCCL needs one GPU per rank): exact, not fast");
        // A repo id names the model as given (its snapshot directory is a commit hash).
        string name = dir is null ? preset! : dir != modelArg ? modelArg! : Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir)));
        return new LoadedModel(name, dir, config, weights, tokenizerPath, new InferenceEngine(config, group, rates) { PrefillChunkTokens = r.GetValue(o.PrefillChunk) }, dummy,
            progress, PrecisionReport.Of(weights, device, precision.Fp8Attention));
    }

    /// <summary>This process's rank of a multi-process group: every process is one rank, on the CPU or on GPU LOCAL_RANK.</summary>
    private static ProcessRankGroup ProcessGroup(ParseResult r, CommonOptions o, ModelConfig config, ModelWeights weights, string device,
        string attention, LaunchEnvironment launch, Progress progress, bool fp8Attention)
    {
        int tensor = r.GetValue(o.TensorParallel);
        var grid = RankGrid.ForWorld(config, launch.WorldSize, tensor);
        if (r.GetValue(o.Ranks) is int asked && asked != 1 && asked != grid.ContextRanks)
            throw new LongCtxException($"--ranks {asked} disagrees with WORLD_SIZE={launch.WorldSize} / --tensor-parallel {tensor}: in a multi-process run every process is one rank (leave --ranks out)");
        if (r.GetValue(o.Gpus) is { } gpus && gpus != launch.WorldSize)
            throw new LongCtxException($"--gpus {gpus} disagrees with WORLD_SIZE={launch.WorldSize}: in a multi-process run every process is one GPU (leave --gpus out)");
        return progress.Run(device == Devices.Cuda ? $"Joining the process group on GPU {launch.LocalRank}" : "Joining the process group",
            () => Devices.Process(config, weights, launch, device, attention, r.GetValue(o.Threads), tensor, fp8Attention));
    }

    public void Dispose()
    {
        Engine.Dispose();
        Weights.Dispose();
    }
}
