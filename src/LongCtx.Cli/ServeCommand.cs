using System.CommandLine;
using LongCtx.ContextParallel;
using LongCtx.Server;
using Microsoft.Extensions.Logging;

namespace LongCtx.Cli;

/// <summary>
/// `longctx serve [MODEL]`: the model behind an OpenAI-compatible HTTP server until SIGTERM or Ctrl+C, which drain it
/// (requests in flight finish, or end with a final chunk at --shutdown-timeout) before it exits 0. vLLM's flags are
/// taken where users reach for them.
/// </summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var common = new CommonOptions();
        var model = new Argument<string?>("model") { Description = "the model directory or repo id, as --model (vLLM's `vllm serve MODEL`)", Arity = ArgumentArity.ZeroOrOne };
        var host = new Option<string>("--host") { Description = "address to listen on: this machine's (localhost, 127.0.0.1, one of its addresses) or 0.0.0.0 / :: for every interface", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "port to listen on (0: any free port)", DefaultValueFactory = _ => 8000 };
        var names = new Option<string[]>("--served-model-name") { Description = "names the model answers to in requests' \"model\" (the first is the one responses carry); default: the directory's name", AllowMultipleArgumentsPerToken = true };
        var maxModelLen = new Option<int?>("--max-model-len") { Description = "context window a prompt and its max_tokens must fit together (default: max_position_embeddings)" };
        var maxPrompt = new Option<int?>("--max-prompt-tokens") { Description = "longest prompt admitted (default: the context window)" };
        var maxConcurrent = new Option<int>("--max-concurrent", "--max-num-seqs") { Description = "requests in the engine at once; more wait in the queue", DefaultValueFactory = _ => 256 };
        var maxWaiting = new Option<int>("--max-waiting") { Description = "requests waiting beyond --max-concurrent; more get 429 with Retry-After", DefaultValueFactory = _ => 256 };
        var maxBatch = new Option<int>("--max-num-batched-tokens", "--max-batch-tokens") { Description = "new tokens a step runs: a token per decoding request, the rest prefill chunks of waiting prompts", DefaultValueFactory = _ => 8192 };
        var maxKv = new Option<long?>("--max-kv-tokens") { Description = "positions of KV held at most over all requests and kept conversations; requests wait for room (default: 90% of the memory left after loading)" };
        var kept = new Option<int>("--kept-conversations") { Description = "finished chats whose KV is kept for their next turn", DefaultValueFactory = _ => 8 };
        var apiKeys = new Option<string[]>("--api-key") { Description = $"require 'Authorization: Bearer KEY' on /v1/*, /tokenize and /detokenize (several: any of them; default: {ServerEnvironment.ApiKeyVariable})", AllowMultipleArgumentsPerToken = true };
        var allowedHosts = new Option<string[]>("--allowed-hosts") { Description = "Host header names accepted beyond IP addresses, localhost and this machine's name (*: any)", AllowMultipleArgumentsPerToken = true };
        var allowedOrigins = new Option<string[]>("--allowed-origins") { Description = "web origins browsers may call from (CORS; *: any); default: none", AllowMultipleArgumentsPerToken = true };
        var shutdown = new Option<double>("--shutdown-timeout") { Description = "seconds a SIGTERM lets requests in flight finish before ending them", DefaultValueFactory = _ => 30 };
        var seed = new Option<int?>("--seed") { Description = "seeds the draws of requests that bring no seed" };
        var logLevel = new Option<string>("--log-level") { Description = "debug (every step), info (every request), warning, error", DefaultValueFactory = _ => "info" };
        var chatTemplate = ChatTemplateOption.Create();
        var command = new Command("serve", "Serve the model over an OpenAI-compatible HTTP API (completions, chat completions, streaming)");
        command.Arguments.Add(model);
        common.AddServingTo(command);
        foreach (var o in new Option[] { host, port, names, maxModelLen, maxPrompt, maxConcurrent, maxWaiting, maxBatch, maxKv, kept, apiKeys, allowedHosts, allowedOrigins, shutdown, seed, logLevel, chatTemplate })
            command.Options.Add(o);
        command.SetAction((r, _) =>
        {
            if (r.GetValue(shutdown) is var seconds && !(seconds >= 0 && seconds <= TimeSpan.MaxValue.TotalSeconds)) throw new LongCtxException("--shutdown-timeout must be 0 or more seconds");
            var options = new ServerOptions
            {
                Host = r.GetValue(host)!,
                Port = r.GetValue(port),
                MaxModelLen = r.GetValue(maxModelLen),
                MaxPromptTokens = r.GetValue(maxPrompt),
                MaxConcurrent = r.GetValue(maxConcurrent),
                MaxWaiting = r.GetValue(maxWaiting),
                MaxBatchTokens = r.GetValue(maxBatch),
                MaxKvTokens = r.GetValue(maxKv),
                KeptConversations = r.GetValue(kept),
                Strategy = StrategyNames.Validate(r.GetValue(common.Strategy)!),
                ApiKeys = ServerEnvironment.ApiKeys(r.GetValue(apiKeys) ?? []),
                AllowedHosts = r.GetValue(allowedHosts) ?? [],
                AllowedOrigins = r.GetValue(allowedOrigins) ?? [],
                ShutdownTimeout = TimeSpan.FromSeconds(seconds),
                Seed = r.GetValue(seed),
                LogLevel = r.GetValue(common.Verbose) ? LogLevel.Debug : Level(r.GetValue(logLevel)!),
            };
            return Run(r, common, options, r.GetValue(model), r.GetValue(names) ?? [], r.GetValue(chatTemplate));
        });
        return command;
    }

    private static LogLevel Level(string name) => name.ToLowerInvariant() switch
    {
        "debug" or "trace" => LogLevel.Debug,
        "info" or "information" => LogLevel.Information,
        "warning" or "warn" => LogLevel.Warning,
        "error" or "critical" => LogLevel.Error,
        _ => throw new LongCtxException($"--log-level {name} is unknown: use debug, info, warning or error"),
    };

    private static async Task<int> Run(ParseResult r, CommonOptions o, ServerOptions options, string? modelArgument, string[] names, string? chatTemplateFile)
    {
        options.Validate();
        if (names.Any(string.IsNullOrWhiteSpace)) throw new LongCtxException("--served-model-name must not be empty");
        BindAddress.Resolve(options.Host); // a typo fails here, before minutes of loading
        var progress = new Progress(true);
        using var model = LoadedModel.Load(r, o, progress, modelArgument);
        if (options.MaxModelLen > model.Config.MaxPositionEmbeddings)
            throw new LongCtxException($"--max-model-len {options.MaxModelLen} is more than the model's max_position_embeddings ({model.Config.MaxPositionEmbeddings})");
        var tokenizer = model.RequireTokenizer();
        var template = ChatTemplate.Load(model.TokenizerPath, chatTemplateFile);
        string id = names.Length > 0 ? names[0] : model.Name;
        using var heads = ApproximateInput.Heads(model.Directory, model.Config);
        await using var server = await OpenAiServer.StartAsync(new ServedModel(id, model.Engine, tokenizer, template, heads, model.Generation, names), options);
        if (model.Dummy) Progress.Warn("note: the weights are random (--load-format dummy): the text is noise, the timings are real");
        string ranks = model.Engine.TensorRanks == 1 ? $"{model.Engine.Ranks} rank(s)" : $"{model.Engine.Ranks} context x {model.Engine.TensorRanks} tensor ranks";
        Console.WriteLine($"serving {id} on {ranks}, strategy {options.Strategy}, chat template {template?.Name ?? "none (completions only)"}, KV for {server.KvCapacity} tokens");
        Console.WriteLine($"listening on {server.Address}");
        // SIGTERM and SIGINT stop the host, which drains (OpenAiServer); this returns when that is done.
        await server.WaitForShutdownAsync();
        Console.WriteLine("stopped");
        return 0;
    }
}
