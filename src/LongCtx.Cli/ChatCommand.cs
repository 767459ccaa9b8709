using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using LongCtx.ContextParallel;
using LongCtx.Engine;
using LongCtx.Server;

namespace LongCtx.Cli;

/// <summary>
/// `longctx chat`: a multi-turn conversation on one distributed KV cache. Each line of stdin is a turn: a user
/// message rendered with the model's chat template (or --chat-template FILE) when it has one, else raw text,
/// or with --ids a JSON array of token ids. The conversation so far — earlier turns and the tokens generated for
/// them — stays cached over the ranks, and each turn is a partial prefill of only its new tokens. With --json
/// every turn prints one JSON line, cached_tokens showing the reuse.
/// </summary>
internal static class ChatCommand
{
    public static Command Create()
    {
        var common = new CommonOptions();
        var ids = new Option<bool>("--ids") { Description = "each stdin line is a JSON array of token ids" };
        var chatTemplate = ChatTemplateOption.Create();
        var command = new Command("chat", "Multi-turn generation that reuses the distributed KV cache between turns");
        common.AddTo(command);
        command.Options.Add(ids);
        command.Options.Add(chatTemplate);
        command.SetAction(r => Run(r, common, r.GetValue(ids), r.GetValue(chatTemplate)));
        return command;
    }

    private static int Run(ParseResult r, CommonOptions o, bool idLines, string? chatTemplateFile)
    {
        bool json = r.GetValue(o.Json);
        var sampling = o.Sampling(r);
        string strategy = StrategyNames.Validate(r.GetValue(o.Strategy)!);
        if (idLines && chatTemplateFile is not null) throw new LongCtxException("--chat-template renders text turns; --ids turns are token ids already: drop one of them");
        var progress = new Progress(!json);
        using var model = LoadedModel.Load(r, o, progress);
        model.Engine.OnPrefillProgress = progress.PrefillListener();
        var template = idLines ? null : ChatTemplate.Load(model.TokenizerPath, chatTemplateFile);
        var chat = template is null ? null : new TemplateConversation(template, model.RequireTokenizer());
        sampling = o.Sampling(r, model.Generation);
        var stopTokens = model.StopTokens.Concat(chat?.EndOfTurn is { } end ? [end] : []).ToHashSet();
        var sequence = model.Engine.NewSequence();
        var conversation = new List<int>();
        string? line;
        while ((line = Console.In.ReadLine()) is not null)
        {
            if (line.Length == 0) continue;
            int[] prompt;
            if (chat is not null)
            {
                prompt = chat.AddUserTurn(line);
                // A template that rewrites earlier turns (drops a reasoning block) changes the past: that turn starts over.
                if (!prompt.AsSpan().StartsWith(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(sequence.Tokens)) || prompt.Length == sequence.Tokens.Count)
                {
                    model.Engine.Release(sequence);
                    sequence = model.Engine.NewSequence();
                }
            }
            else
            {
                conversation.AddRange(idLines ? ParseIds(line) : model.RequireTokenizer().Encode(line, addSpecialTokens: conversation.Count == 0));
                prompt = conversation.ToArray();
            }
            var result = model.Engine.Generate(sequence,
                new GenerationRequest(prompt, r.GetValue(o.MaxNewTokens), sampling, strategy, StopTokens: stopTokens));
            if (chat is null) conversation.AddRange(result.Tokens);
            else chat.AddReply(result.Tokens, stopTokens);
            if (r.GetValue(o.Verbose) && result.Choice is { } choice) Console.Error.WriteLine($"debug: strategy choice {choice}");
            if (json)
                Console.WriteLine(new JsonObject
                {
                    ["token_ids"] = new JsonArray(result.Tokens.Select(t => (JsonNode)t).ToArray()),
                    ["text"] = model.Tokenizer?.Decode([.. result.Tokens]) ?? "",
                    ["prompt_tokens"] = result.PromptTokens,
                    ["cached_tokens"] = result.CachedTokens,
                    ["strategy"] = result.Strategy,
                    ["strategy_chosen"] = result.Choice?.Strategy,
                    ["ranks"] = model.Engine.Ranks,
                    ["ttft_ms"] = Math.Round(result.TtftMs, 3),
                }.ToJsonString());
            else
                Console.WriteLine($"{model.Tokenizer?.Decode([.. result.Tokens]) ?? string.Join(' ', result.Tokens)}\n" +
                                  $"[{result.PromptTokens - result.CachedTokens} new tokens prefilled, {result.CachedTokens} reused from cache, strategy {result.Strategy}, TTFT {result.TtftMs:0.0} ms]");
        }
        return 0;
    }

    private static int[] ParseIds(string line)
    {
        try { return JsonSerializer.Deserialize(line, IdsJson.Default.Int32Array) ?? []; }
        catch (JsonException e) { throw new LongCtxException($"stdin: expected a JSON array of token ids per line ({e.Message})"); }
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(int[]))]
internal sealed partial class IdsJson : System.Text.Json.Serialization.JsonSerializerContext;
