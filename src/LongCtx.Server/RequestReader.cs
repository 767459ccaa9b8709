using System.Text.Json;
using System.Text.Json.Nodes;
using LongCtx.Sampling;
using LongCtx.Text.Jinja;

namespace LongCtx.Server;

/// <summary>
/// Reads the body of /v1/completions and /v1/chat/completions into <see cref="GenerationParams"/>,
/// checking every field OpenAI defines that this server acts on; unknown fields are ignored, as OpenAI's
/// own server ignores what it does not use.
/// </summary>
public sealed class RequestReader(ServedModel model, ServerOptions options)
{
    /// <summary>OpenAI's default for completions; chat replies run until a stop token or this cap.</summary>
    private const int DefaultCompletionTokens = 16, DefaultChatTokens = 512;

    public GenerationParams Read(JsonNode? body, bool chat)
    {
        if (body is not JsonObject o) throw ApiException.BadRequest("the request body must be a JSON object");
        if (o.String("model") is { } name && name != model.Id)
            throw new ApiException(404, $"model '{name}' is not served here: use '{model.Id}'", "model", "model_not_found");
        if (o.Integer("n") is { } n && n != 1) throw ApiException.BadRequest("only n=1 is supported", "n");
        int? logprobs = chat ? LogprobsRequest.Chat(o) : LogprobsRequest.Completion(o);
        bool echo = !chat && (o.Bool("echo") ?? false);

        var (prompt, promptText) = chat ? (ChatTokens(o), null) : CompletionPrompt(o);
        string promptParam = chat ? "messages" : "prompt";
        CheckPrompt(prompt, promptParam);
        var (strategy, approximate) = LongCtxExtension.Read(o, prompt, promptParam, options.Strategy, model.Engine.Ranks, model.RetainingHeads);
        if (echo && logprobs is not null) LogprobsRequest.CheckPromptLogprobs(approximate is not null);
        long? maxTokens = o.Integer("max_completion_tokens") ?? o.Integer("max_tokens");
        // max_tokens 0 asks for nothing but the echoed prompt (and its logprobs): how evaluation harnesses score a text.
        if (maxTokens < (echo ? 0 : 1))
            throw ApiException.BadRequest($"max_tokens must be {(echo ? "0" : "1")} or more, got {maxTokens}", o.Has("max_completion_tokens") ? "max_completion_tokens" : "max_tokens");
        var streamOptions = o.Object("stream_options");
        return new GenerationParams
        {
            Chat = chat,
            PromptTokens = prompt,
            MaxTokens = (int)Math.Min(maxTokens ?? (chat ? DefaultChatTokens : DefaultCompletionTokens), int.MaxValue),
            Sampling = Sampling(o),
            Strategy = strategy,
            Approximate = approximate,
            Stop = Stop(o),
            Logprobs = logprobs,
            // A text prompt is echoed as sent; token ids as they decode, as the reply's text does.
            EchoText = echo ? promptText ?? model.Tokenizer.Decode(prompt, skipSpecialTokens: true) : null,
            Stream = o.Bool("stream") ?? false,
            IncludeUsage = streamOptions?.Bool("include_usage", "stream_options.") ?? false,
        };
    }

    /// <summary>The prompt's tokens, and its text when it came as text.</summary>
    private (int[] Tokens, string? Text) CompletionPrompt(JsonObject o)
    {
        var node = o.Field("prompt");
        // A batch of one prompt (what lm-eval's local-completions sends at batch size 1) is that prompt.
        if (node is JsonArray { Count: 1 } one && (one[0] is JsonArray || one[0] is JsonValue first && first.GetValueKind() == JsonValueKind.String)) node = one[0];
        switch (node)
        {
            case null: throw ApiException.BadRequest("'prompt' is required", "prompt");
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                string text = v.GetValue<string>();
                if (text.Length == 0) throw ApiException.BadRequest("'prompt' is empty", "prompt");
                // As `longctx generate --prompt`: the tokenizer adds the model's BOS token.
                return (model.Tokenizer.Encode(text, addSpecialTokens: true), text);
            default:
                return (JsonFields.TokenIds(node)
                    ?? throw ApiException.BadRequest("'prompt' must be a string or a non-empty array of token ids (batches of more than one prompt are not supported)", "prompt"), null);
        }
    }

    private int[] ChatTokens(JsonObject o)
    {
        if (o.Field("messages") is not JsonArray list) throw ApiException.BadRequest(o.Has("messages") ? "'messages' must be an array" : "'messages' is required", "messages");
        if (list.Count == 0) throw ApiException.BadRequest("'messages' is empty", "messages");
        var template = model.Template
            ?? throw ApiException.BadRequest("this model has no chat template (tokenizer_config.json has no chat_template): serve it with --chat-template FILE, or use /v1/completions", "messages", "chat_template_unknown");
        var messages = list.Select((m, i) => Message(m, $"messages[{i}]")).ToList();
        var kwargs = TemplateKwargs(o);
        try { return ChatPrompt.Encode(template, model.Tokenizer, messages, model.Replies, kwargs); }
        catch (TemplateException e) { throw ApiException.BadRequest($"the chat template refused the messages: {(e.Raised ? e.Detail : e.Message)}", "messages"); }
    }

    /// <summary>chat_template_kwargs: extra variables for the template (enable_thinking...), as vLLM takes them.</summary>
    private static Dictionary<string, object?>? TemplateKwargs(JsonObject o)
    {
        if (o.Object("chat_template_kwargs") is not { } kwargs) return null;
        foreach (var (name, _) in kwargs)
            if (ChatTemplate.ReservedVariables.Contains(name))
                throw ApiException.BadRequest($"'chat_template_kwargs.{name}' is set by the server; leave it out", "chat_template_kwargs." + name);
        return kwargs.ToDictionary(kv => kv.Key, kv => (object?)kv.Value?.DeepClone());
    }

    private static ChatMessage Message(JsonNode? node, string path)
    {
        if (node is not JsonObject m) throw JsonFields.Wrong(path, "an object with role and content");
        string role = m.String("role", path + ".") ?? throw ApiException.BadRequest($"'{path}.role' is required", path + ".role");
        // "developer" is what newer OpenAI models call the system role.
        if (role == "developer") role = "system";
        if (role is not ("system" or "user" or "assistant"))
            throw ApiException.BadRequest($"'{path}.role' is '{role}': use system, user or assistant", path + ".role");
        return new ChatMessage(role, Content(m.Field("content"), path + ".content"), m.String("reasoning_content", path + "."));
    }

    /// <summary>A message's content: a string, or an array of text parts.</summary>
    private static string Content(JsonNode? node, string path)
    {
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.String) return v.GetValue<string>();
        if (node is null) throw ApiException.BadRequest($"'{path}' is required", path);
        if (node is not JsonArray parts) throw JsonFields.Wrong(path, "a string or an array of text parts");
        return string.Concat(parts.Select((p, i) => p is JsonObject part && part.String("type") == "text" && part.String("text") is { } t
            ? t
            : throw ApiException.BadRequest($"'{path}[{i}]' must be a text part {{\"type\": \"text\", \"text\": ...}}", path)));
    }

    private void CheckPrompt(int[] prompt, string param)
    {
        int limit = Math.Min(options.MaxPromptTokens ?? int.MaxValue, model.Engine.Config.MaxPositionEmbeddings);
        if (prompt.Length > limit)
            throw ApiException.BadRequest($"the prompt has {prompt.Length} tokens, more than the {limit} this server admits", param, "context_length_exceeded");
        int vocab = model.Engine.Config.VocabSize;
        foreach (int id in prompt)
            if ((uint)id >= (uint)vocab) throw ApiException.BadRequest($"token id {id} is outside the vocabulary (size {vocab})", param);
    }

    private static SamplingOptions Sampling(JsonObject o)
    {
        double temperature = o.Number("temperature") ?? 1.0, topP = o.Number("top_p") ?? 1.0;
        if (!(temperature is >= 0 and <= 2)) throw ApiException.BadRequest($"temperature {temperature} must be in [0, 2]", "temperature");
        if (!(topP is > 0 and <= 1)) throw ApiException.BadRequest($"top_p {topP} must be in (0, 1]", "top_p");
        // top_k as vLLM takes it: the k most likely tokens; -1 or 0 for all.
        long topK = o.Integer("top_k") ?? 0;
        if (topK < -1 || topK > int.MaxValue) throw ApiException.BadRequest($"top_k {topK} must be -1 or 0 (off) or a positive number of tokens", "top_k");
        long? seed = o.Integer("seed");
        return new SamplingOptions((float)temperature, (float)topP, (int)Math.Max(0, topK), seed is null ? null : unchecked((int)seed.Value));
    }

    private static List<string> Stop(JsonObject o)
    {
        var stop = o.Field("stop") switch
        {
            null => [],
            JsonValue v when v.GetValueKind() == JsonValueKind.String => [v.GetValue<string>()],
            JsonArray a when a.All(s => s is JsonValue sv && sv.GetValueKind() == JsonValueKind.String) => a.Select(s => s!.GetValue<string>()).ToList(),
            _ => throw JsonFields.Wrong("stop", "a string or an array of strings"),
        };
        if (stop.Count > 16) throw ApiException.BadRequest("'stop' has more than 16 sequences", "stop");
        if (stop.Any(s => s.Length == 0)) throw ApiException.BadRequest("'stop' sequences must not be empty", "stop");
        return stop;
    }
}
