using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using LongCtx.ContextParallel;
using LongCtx.Engine;

namespace LongCtx.Cli;

/// <summary>
/// `longctx chat`: a multi-turn conversation on one distributed KV cache. Each line of stdin is a turn
/// (text, or with --ids a JSON array of token ids); the conversation so far — earlier turns and the
/// tokens generated for them — stays cached over the ranks, and each turn is a partial prefill of only
/// its new tokens. With --json every turn prints one JSON line, cached_tokens showing the reuse.
/// </summary>
internal static class ChatCommand
{
    public static Command Create()
    {
        var common = new CommonOptions();
        var ids = new Option<bool>("--ids") { Description = "each stdin line is a JSON array of token ids" };
        var command = new Command("chat", "Multi-turn generation that reuses the distributed KV cache between turns");
        common.AddTo(command);
        command.Options.Add(ids);
        command.SetAction(r => Run(r, common, r.GetValue(ids)));
        return command;
    }

    private static int Run(ParseResult r, CommonOptions o, bool idLines)
    {
        bool json = r.GetValue(o.Json);
        var sampling = o.Sampling(r);
        string strategy = StrategyNames.Validate(r.GetValue(o.Strategy)!);
        var progress = new Progress(!json);
        using var model = LoadedModel.Load(r, o, progress);
        var sequence = model.Engine.NewSequence();
        var conversation = new List<int>();
        string? line;
        while ((line = Console.In.ReadLine()) is not null)
        {
            if (line.Length == 0) continue;
            var turn = idLines ? ParseIds(line) : model.RequireTokenizer().Encode(line, addSpecialTokens: conversation.Count == 0);
            conversation.AddRange(turn);
            var result = model.Engine.Generate(sequence,
                new GenerationRequest(conversation.ToArray(), r.GetValue(o.MaxNewTokens), sampling, strategy, StopTokens: model.Config.EosTokenIds));
            conversation.AddRange(result.Tokens);
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
