using System.CommandLine;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using LongCtx.Approximate;
using LongCtx.ContextParallel;
using LongCtx.Engine;
using LongCtx.Model;
using LongCtx.Tensors;

namespace LongCtx.Cli;

/// <summary>`longctx generate`: prefill a prompt over the ranks, then decode, streaming text or printing JSON.</summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var common = new CommonOptions();
        var prompt = new PromptInput();
        var approximate = new ApproximateInput();
        var dumpLogits = new Option<string?>("--dump-logits") { Description = "write the last prompt positions' logits to this safetensors file (tensor 'logits')" };
        var dumpLast = new Option<int>("--dump-last") { Description = "how many last prompt positions --dump-logits keeps", DefaultValueFactory = _ => 1 };
        var command = new Command("generate", "Generate text from a prompt");
        common.AddTo(command);
        prompt.AddTo(command);
        approximate.AddTo(command);
        command.Options.Add(dumpLogits);
        command.Options.Add(dumpLast);
        command.SetAction(r => Run(r, common, prompt, approximate, r.GetValue(dumpLogits), r.GetValue(dumpLast)));
        return command;
    }

    private static int Run(ParseResult r, CommonOptions o, PromptInput prompt, ApproximateInput approximate, string? dumpPath, int dumpLast)
    {
        bool json = r.GetValue(o.Json);
        var sampling = o.Sampling(r);
        string strategy = StrategyNames.Validate(r.GetValue(o.Strategy)!);
        if (dumpLast < 1) throw new LongCtxException("--dump-last must be 1 or more");
        if (dumpPath is not null && OutputFile.Problem(dumpPath) is { } problem) throw new LongCtxException($"--dump-logits {dumpPath}: {problem}");
        var progress = new Progress(!json);
        using var model = LoadedModel.Load(r, o, progress);
        model.Engine.OnPrefillProgress = progress.PrefillListener();
        sampling = o.Sampling(r, model.Generation);
        if (model.Dummy && !json) Progress.Warn("note: the weights are random (--load-format dummy): the text is noise, the timings are real");
        int rankThreads = model.Engine.Ranks * model.Engine.TensorRanks, cores = r.GetValue(o.Threads) ?? Environment.ProcessorCount;
        if (!json && r.GetValue(o.Device) == "cpu" && rankThreads > cores)
            Progress.Warn($"note: {rankThreads} CPU ranks share {cores} cores: ranks take turns on them, so more ranks are no faster here (on GPUs each rank has its own)");
        var tokens = prompt.Tokens(r, model.RequireTokenizer);
        ApproximateOptions? options = null;
        using var heads = approximate.Wanted(r, strategy) ? ApproximateInput.Heads(model.Directory, model.Config) : null;
        if (approximate.Wanted(r, strategy))
        {
            (tokens, var queryTokens) = approximate.Split(r, tokens, model.RequireTokenizer);
            options = approximate.Options(r, tokens.Length, queryTokens, heads);
        }

        var stream = !json && model.Tokenizer is not null ? model.Tokenizer.CreateStreamingDecoder() : null;
        var request = new GenerationRequest(tokens, r.GetValue(o.MaxNewTokens), sampling, strategy,
            KeepLastLogits: dumpPath is null ? 1 : dumpLast, StopTokens: model.StopTokens,
            Approximate: options, MeasureError: r.GetValue(approximate.MeasureError));
        var sequence = model.Engine.NewSequence();
        progress.Note($"prefilling {tokens.Length} tokens on {model.Engine.Device}...");
        var result = model.Engine.Generate(sequence, request, id =>
        {
            if (!json) Console.Write(stream is null ? $"{id} " : stream.Push(id));
        });

        if (r.GetValue(o.Verbose) && result.Choice is { } choice) Console.Error.WriteLine($"debug: strategy choice {choice}");
        if (r.GetValue(o.Verbose) && model.AttentionReport() is { } attention) Console.Error.WriteLine($"debug: {attention}");
        if (dumpPath is not null) WriteLogits(dumpPath, result.PromptLogits, model.Config.VocabSize);
        if (json) Console.WriteLine(ToJson(result, model).ToJsonString());
        else
        {
            if (stream is not null) Console.Write(stream.Flush());
            Console.WriteLine();
            Console.Error.WriteLine(Summary(result, model));
        }
        return 0;
    }

    private static void WriteLogits(string path, float[] logits, int vocab)
    {
        var bytes = MemoryMarshal.AsBytes(logits.AsSpan()).ToArray();
        SafetensorsWriter.Write(path, [("logits", DType.F32, [logits.Length / vocab, vocab], bytes)]);
    }

    private static JsonObject ToJson(GenerationResult g, LoadedModel model)
    {
        var o = new JsonObject
        {
            ["token_ids"] = new JsonArray(g.Tokens.Select(t => (JsonNode)t).ToArray()),
            ["text"] = model.Tokenizer?.Decode([.. g.Tokens]) ?? "",
            ["finish_reason"] = g.FinishReason,
            ["prompt_tokens"] = g.PromptTokens,
            ["cached_tokens"] = g.CachedTokens,
            ["strategy"] = g.Strategy,
            ["ranks"] = model.Engine.Ranks,
            ["tensor_parallel"] = model.Engine.TensorRanks,
            ["device"] = model.Engine.Device,
            ["weights"] = model.Dummy ? "random" : "loaded",
            ["dtypes"] = model.Precision.DeepClone(),
            ["ttft_ms"] = Math.Round(g.TtftMs, 3),
            ["decode_ms_per_token"] = Math.Round(g.DecodeMsPerToken, 3),
        };
        if (g.Choice is { } c)
        {
            o["strategy_chosen"] = c.Strategy;
            o["strategy_inputs"] = c.ToString();
        }
        o["approximate"] = g.Approximation is not null;
        if (g.Approximation is { } a)
        {
            o["query_tokens"] = a.QueryTokens;
            o["anchor_tokens"] = a.AnchorTokens;
            o["passing_tokens"] = a.PassingTokens;
            o["block_tokens"] = new JsonArray(a.BlockTokens.Select(b => (JsonNode)b).ToArray());
            if (a.RelativeError is { } e) o["logits_relative_error"] = e;
            if (a.Top1Agrees is { } t) o["top1_agrees"] = t;
        }
        return o;
    }

    private static string Summary(GenerationResult g, LoadedModel model) =>
        $"[{g.PromptTokens} prompt tokens, {g.Tokens.Count} generated; strategy {g.Strategy}{(g.Choice is null ? "" : " (auto)")} on {model.Engine.Device}; " +
        $"TTFT {g.TtftMs:0.0} ms, decode {g.DecodeMsPerToken:0.00} ms/token" +
        (g.Approximation is { RelativeError: { } e, Top1Agrees: { } t } ? $"; approximate: logits error {e:e2} vs pass-kv, top-1 {(t ? "agrees" : "differs")}" : "") + "]";
}
