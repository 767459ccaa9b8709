using System.CommandLine;
using LongCtx.ContextParallel;
using LongCtx.Server;

namespace LongCtx.Cli;

/// <summary>`longctx serve`: the model behind an OpenAI-compatible HTTP server, until Ctrl+C.</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var common = new CommonOptions();
        var host = new Option<string>("--host") { Description = "address to listen on", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "port to listen on (0: any free port)", DefaultValueFactory = _ => 8000 };
        var maxPrompt = new Option<int?>("--max-prompt-tokens") { Description = "longest prompt admitted (default: max_position_embeddings)" };
        var maxConcurrent = new Option<int>("--max-concurrent") { Description = "generation requests in flight at once; more get 429", DefaultValueFactory = _ => 256 };
        var maxBatch = new Option<int>("--max-batch-tokens") { Description = "new tokens of the prefills fused into one engine call", DefaultValueFactory = _ => 16384 };
        var chatTemplate = ChatTemplateOption.Create();
        var command = new Command("serve", "Serve the model over an OpenAI-compatible HTTP API (completions, chat completions, streaming)");
        common.AddServingTo(command);
        foreach (var o in new Option[] { host, port, maxPrompt, maxConcurrent, maxBatch, chatTemplate }) command.Options.Add(o);
        command.SetAction((r, cancel) => Run(r, common, new ServerOptions
        {
            Host = r.GetValue(host)!,
            Port = r.GetValue(port),
            MaxPromptTokens = r.GetValue(maxPrompt),
            MaxConcurrent = r.GetValue(maxConcurrent),
            MaxBatchTokens = r.GetValue(maxBatch),
            Strategy = StrategyNames.Validate(r.GetValue(common.Strategy)!),
        }, r.GetValue(chatTemplate), cancel));
        return command;
    }

    private static async Task<int> Run(ParseResult r, CommonOptions o, ServerOptions options, string? chatTemplateFile, CancellationToken cancel)
    {
        options.Validate();
        var progress = new Progress(true);
        using var model = LoadedModel.Load(r, o, progress);
        var tokenizer = model.RequireTokenizer();
        var template = ChatTemplate.Load(model.TokenizerPath, chatTemplateFile);
        string id = model.Name;
        using var heads = ApproximateInput.Heads(model.Directory, model.Config);
        await using var server = await OpenAiServer.StartAsync(new ServedModel(id, model.Engine, tokenizer, template, heads), options);
        if (model.Dummy) Progress.Warn("note: the weights are random (--load-format dummy): the text is noise, the timings are real");
        string ranks = model.Engine.TensorRanks == 1 ? $"{model.Engine.Ranks} rank(s)" : $"{model.Engine.Ranks} context x {model.Engine.TensorRanks} tensor ranks";
        Console.WriteLine($"serving {id} on {ranks}, strategy {options.Strategy}, chat template {template?.Name ?? "none (completions only)"}");
        Console.WriteLine($"listening on {server.Address}");
        try { await Task.Delay(Timeout.Infinite, cancel); }
        catch (OperationCanceledException) { }
        return 0;
    }
}
