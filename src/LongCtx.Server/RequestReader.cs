using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using LongCtx.Sampling;
using LongCtx.Text.Jinja;

namespace LongCtx.Server;

/// <summary>
/// Reads the body of /v1/completions and /v1/chat/completions into <see cref="GenerationParams"/>, checking every field
/// OpenAI defines that this server acts on. Fields it would have to act on but does not (tools, a JSON schema, best_of,
/// suffix) are a 400 that names them rather than being ignored; fields that change nothing about the answer (user,
/// metadata...) are ignored, as OpenAI's own server ignores what it does not use. Sampling values a request leaves out
/// come from generation_config.json, as vLLM's default does, else OpenAI's defaults.
/// </summary>
public sealed class RequestReader(ServedModel model, ServerOptions options)
{
    /// <summary>OpenAI's default for completions; chat replies run until a stop token or this cap.</summary>
    private const int DefaultCompletionTokens = 16, DefaultChatTokens = 512;

    private readonly Random? _seeds = options.Seed is { } seed ? new Random(seed) : null;

    /// <summary>The context window a prompt and its max_tokens share (--max-model-len, else the model's).</summary>
    public int MaxModelLen { get; } = Math.Min(options.MaxModelLen ?? int.MaxValue, model.Engine.Config.MaxPositionEmbeddings);

    /// <param name="partition">the API key's part of <see cref="GenerationParams.Partition"/>; the request's cache_salt is added to it</param>
    public GenerationParams Read(JsonNode? body, bool chat, string partition = "")
    {
        if (body is not JsonObject o) throw ApiException.BadRequest("the request body must be a JSON object");
        JsonUnicode.Check(o);
        CheckModel(o);
        if (o.Integer("n") is { } n && n != 1) throw ApiException.BadRequest("only n=1 is supported", "n");
        Unsupported(o, chat);
        int? logprobs = chat ? LogprobsRequest.Chat(o) : LogprobsRequest.Completion(o);
        bool echo = !chat && (o.Bool("echo") ?? false);

        var (prompt, promptText) = chat ? (ChatTokens(o, partition), null) : CompletionPrompt(o);
        string promptParam = chat ? "messages" : "prompt";
        CheckPrompt(prompt, promptParam);
        var (strategy, approximate) = LongCtxExtension.Read(o, prompt, promptParam, options.Strategy, model.Engine.Ranks, model.RetainingHeads);
        if (echo && logprobs is not null) LogprobsRequest.CheckPromptLogprobs(approximate is not null);
        var streamOptions = o.Object("stream_options");
        return new GenerationParams
        {
            Chat = chat,
            PromptTokens = prompt,
            MaxTokens = MaxTokens(o, chat, echo, prompt.Length),
            Sampling = Sampling(o),
            Strategy = strategy,
            Approximate = approximate,
            Stop = Stop(o),
            Logprobs = logprobs,
            // A text prompt is echoed as sent; token ids as they decode, as the reply's text does.
            EchoText = echo ? promptText ?? model.Tokenizer.Decode(prompt, skipSpecialTokens: true) : null,
            Stream = o.Bool("stream") ?? false,
            IncludeUsage = streamOptions?.Bool("include_usage", "stream_options.") ?? false,
            Partition = Partition(o, partition),
        };
    }

    /// <summary>The request's partition: the API key's, and its cache_salt's when it brings one (vLLM's field).</summary>
    private static string Partition(JsonObject o, string keyPartition)
    {
        string? salt = o.String("cache_salt");
        if (salt is { Length: 0 }) throw ApiException.BadRequest("'cache_salt' is empty: leave it out, or send a secret that is hard to guess", "cache_salt");
        return salt is null ? keyPartition : $"{keyPartition}\n{salt}";
    }

    /// <summary>A request's "model", when it names one, must be one of the served names (404).</summary>
    internal void CheckModel(JsonObject o)
    {
        if (o.String("model") is { } name && !model.Names.Contains(name))
            throw new ApiException(404, $"model '{name}' is not served here: use {string.Join(" or ", model.Names.Select(m => $"'{m}'"))}", "model", "model_not_found");
    }

    /// <summary>Fields whose meaning this server does not implement: a 400 that names each, rather than an answer that ignores it.</summary>
    private static void Unsupported(JsonObject o, bool chat)
    {
        if (o.Field("tools") is not (null or JsonArray { Count: 0 }) || o.Has("functions"))
            throw ApiException.BadRequest($"'{(o.Has("functions") ? "functions" : "tools")}': tool calling is not implemented; leave the field out", o.Has("functions") ? "functions" : "tools");
        if (o.Field("tool_choice") is { } choice && !(choice is JsonValue v && v.GetValueKind() == JsonValueKind.String && v.GetValue<string>() is "none" or "auto"))
            throw ApiException.BadRequest("'tool_choice': tool calling is not implemented; leave the field out", "tool_choice");
        if (o.Has("function_call")) throw ApiException.BadRequest("'function_call': tool calling is not implemented; leave the field out", "function_call");
        if (o.Object("response_format") is { } format && format.String("type", "response_format.") is { } type && type != "text")
            throw ApiException.BadRequest($"'response_format' of type '{type}': structured output is not implemented; leave the field out or use {{\"type\": \"text\"}}", "response_format");
        if (o.Integer("best_of") is { } bestOf && bestOf != 1) throw ApiException.BadRequest("'best_of': only 1 is supported", "best_of");
        if (!chat && o.String("suffix") is { Length: > 0 }) throw ApiException.BadRequest("'suffix': insertion is not implemented; leave the field out", "suffix");
    }

    /// <summary>
    /// max_tokens (or max_completion_tokens): checked against the context window with the prompt (a 400, as vLLM's); left
    /// out, the default cut to what the window leaves.
    /// </summary>
    private int MaxTokens(JsonObject o, bool chat, bool echo, int promptLength)
    {
        string param = o.Has("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
        long? asked = o.Integer("max_completion_tokens") ?? o.Integer("max_tokens");
        // max_tokens 0 asks for nothing but the echoed prompt (and its logprobs): how evaluation harnesses score a text.
        int least = echo ? 0 : 1;
        if (asked < least) throw ApiException.BadRequest($"max_tokens must be {least} or more, got {asked}", param);
        long room = (long)MaxModelLen - promptLength;
        if (asked is { } n && n > room)
            throw ApiException.BadRequest($"the context window is {MaxModelLen} tokens; the prompt takes {promptLength} and max_tokens asks for {n}: ask for at most {Math.Max(0, room)}, or shorten the prompt",
                param, "context_length_exceeded");
        if (asked is null && room < least)
            throw ApiException.BadRequest($"the prompt's {promptLength} tokens fill the context window of {MaxModelLen}: shorten it", chat ? "messages" : "prompt", "context_length_exceeded");
        return (int)Math.Min(asked ?? (chat ? DefaultChatTokens : DefaultCompletionTokens), room);
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

    /// <summary>The chat's prompt tokens: the messages rendered by the template (with the generation prompt unless told otherwise), replies of the partition reused.</summary>
    internal int[] ChatTokens(JsonObject o, string partition, bool addGenerationPrompt = true)
    {
        if (o.Field("messages") is not JsonArray list) throw ApiException.BadRequest(o.Has("messages") ? "'messages' must be an array" : "'messages' is required", "messages");
        if (list.Count == 0) throw ApiException.BadRequest("'messages' is empty", "messages");
        var template = model.Template
            ?? throw ApiException.BadRequest("this model has no chat template (tokenizer_config.json has no chat_template): serve it with --chat-template FILE, or use /v1/completions", "messages", "chat_template_unknown");
        var messages = list.Select((m, i) => Message(m, $"messages[{i}]")).ToList();
        var kwargs = TemplateKwargs(o);
        try
        {
            return addGenerationPrompt ? ChatPrompt.Encode(template, model.Tokenizer, messages, model.Replies, kwargs, Partition(o, partition))
                : model.Tokenizer.Encode(template.Render(messages, addGenerationPrompt: false, kwargs));
        }
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
        int limit = Math.Min(options.MaxPromptTokens ?? int.MaxValue, MaxModelLen);
        if (prompt.Length > limit)
            throw ApiException.BadRequest($"the prompt has {prompt.Length} tokens, more than the {limit} this server admits", param, "context_length_exceeded");
        int vocab = model.Engine.Config.VocabSize;
        foreach (int id in prompt)
            if ((uint)id >= (uint)vocab) throw ApiException.BadRequest($"token id {id} is outside the vocabulary (size {vocab})", param);
    }

    private SamplingOptions Sampling(JsonObject o)
    {
        var defaults = model.Generation;
        double temperature = o.Number("temperature") ?? defaults.Temperature ?? 1.0, topP = o.Number("top_p") ?? defaults.TopP ?? 1.0;
        if (!(temperature is >= 0 and <= 2)) throw ApiException.BadRequest($"temperature {temperature} must be in [0, 2]", "temperature");
        if (!(topP is > 0 and <= 1)) throw ApiException.BadRequest($"top_p {topP} must be in (0, 1]", "top_p");
        // top_k as vLLM takes it: the k most likely tokens; -1 or 0 for all.
        long topK = o.Integer("top_k") ?? defaults.TopK ?? 0;
        if (topK < -1 || topK > int.MaxValue) throw ApiException.BadRequest($"top_k {topK} must be -1 or 0 (off) or a positive number of tokens", "top_k");
        long? seed = o.Integer("seed");
        if (seed is null && _seeds is not null) lock (_seeds) seed = _seeds.Next();
        var sampling = new SamplingOptions((float)temperature, (float)topP, (int)Math.Max(0, topK), seed is null ? null : unchecked((int)seed.Value))
        {
            PresencePenalty = (float)(o.Number("presence_penalty") ?? 0),
            FrequencyPenalty = (float)(o.Number("frequency_penalty") ?? 0),
            RepetitionPenalty = (float)(o.Number("repetition_penalty") ?? defaults.RepetitionPenalty ?? 1),
            LogitBias = LogitBias(o),
        };
        try { sampling.Validate(); }
        catch (SettingException e) { throw ApiException.From(e, "prompt"); }
        return sampling;
    }

    /// <summary>logit_bias: {"token id": bias from -100 to 100}, as OpenAI takes it.</summary>
    private Dictionary<int, float>? LogitBias(JsonObject o)
    {
        if (o.Object("logit_bias") is not { } map) return null;
        var bias = new Dictionary<int, float>();
        foreach (var (key, value) in map)
        {
            if (!int.TryParse(key, NumberStyles.None, CultureInfo.InvariantCulture, out int token) || token >= model.Engine.Config.VocabSize)
                throw ApiException.BadRequest($"'logit_bias' key '{key}' must be a token id from 0 to {model.Engine.Config.VocabSize - 1}", "logit_bias");
            if (value is not JsonValue v || v.GetValueKind() != JsonValueKind.Number || v.GetValue<double>() is not (>= -SamplingOptions.MaxBias and <= SamplingOptions.MaxBias))
                throw ApiException.BadRequest($"'logit_bias' of token {key} must be a number from -{SamplingOptions.MaxBias} to {SamplingOptions.MaxBias}", "logit_bias");
            bias[token] = (float)v.GetValue<double>();
        }
        return bias;
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
