using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace LongCtx.Server;

/// <summary>
/// The JSON bodies of OpenAI's completion and chat completion responses, whole and as stream chunks,
/// written with Utf8JsonWriter (the CLI is trimmed: no reflection-based serialization).
/// </summary>
internal sealed class ResponseJson(string id, string model, bool chat, LogprobsJson logprobs)
{
    private readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    /// <summary>The whole response; <paramref name="tokenLogprobs"/> is null when the request asked for none.</summary>
    public byte[] Complete(string text, IReadOnlyList<TokenLogprob>? tokenLogprobs, FinishedEvent done) => Write(w =>
    {
        Header(w, chat ? "chat.completion" : "text_completion");
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        if (chat)
        {
            w.WriteStartObject("message");
            w.WriteString("role", "assistant");
            w.WriteString("content", text);
            w.WriteEndObject();
        }
        else w.WriteString("text", text);
        logprobs.Write(w, chat, tokenLogprobs);
        w.WriteString("finish_reason", done.FinishReason);
        w.WriteEndObject();
        w.WriteEndArray();
        Usage(w, done.Usage);
        Extension(w, done);
    });

    /// <summary>
    /// A stream chunk with one choice: text (or the assistant role, for chat's first chunk) with the logprobs of
    /// the tokens it carries, and, at the end, the finish reason.
    /// </summary>
    public byte[] Chunk(string? text, IReadOnlyList<TokenLogprob>? tokenLogprobs = null, bool role = false, FinishedEvent? done = null, bool usageField = false) => Write(w =>
    {
        Header(w, chat ? "chat.completion.chunk" : "text_completion");
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        if (chat)
        {
            w.WriteStartObject("delta");
            if (role) w.WriteString("role", "assistant");
            if (text is not null) w.WriteString("content", text);
            w.WriteEndObject();
        }
        else w.WriteString("text", text ?? "");
        logprobs.Write(w, chat, tokenLogprobs);
        if (done is null) w.WriteNull("finish_reason");
        else w.WriteString("finish_reason", done.FinishReason);
        w.WriteEndObject();
        w.WriteEndArray();
        // With stream_options.include_usage every chunk carries "usage": null but the last.
        if (usageField) w.WriteNull("usage");
        if (done is not null) Extension(w, done);
    });

    /// <summary>The last chunk of a stream with stream_options.include_usage: no choices, the usage.</summary>
    public byte[] UsageChunk(Usage usage) => Write(w =>
    {
        Header(w, chat ? "chat.completion.chunk" : "text_completion");
        w.WriteStartArray("choices");
        w.WriteEndArray();
        Usage(w, usage);
    });

    public static byte[] Error(ApiException e) => Write(w =>
    {
        w.WriteStartObject("error");
        w.WriteString("message", e.Message);
        w.WriteString("type", e.Type);
        if (e.Param is null) w.WriteNull("param"); else w.WriteString("param", e.Param);
        if (e.Code is null) w.WriteNull("code"); else w.WriteString("code", e.Code);
        w.WriteEndObject();
    });

    // Text goes out as UTF-8, not \uXXXX escapes: the bodies are JSON for API clients, never embedded in HTML.
    private static readonly JsonWriterOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static byte[] Write(Action<Utf8JsonWriter> body)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, Options))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    private void Header(Utf8JsonWriter w, string type)
    {
        w.WriteString("id", id);
        w.WriteString("object", type);
        w.WriteNumber("created", _created);
        w.WriteString("model", model);
    }

    private static void Usage(Utf8JsonWriter w, Usage u)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", u.PromptTokens);
        w.WriteNumber("completion_tokens", u.CompletionTokens);
        w.WriteNumber("total_tokens", u.PromptTokens + u.CompletionTokens);
        w.WriteStartObject("prompt_tokens_details");
        w.WriteNumber("cached_tokens", u.CachedTokens);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    /// <summary>LongCtx's own fields: the strategy that ran and the generated token ids (for checking against `longctx generate`).</summary>
    private static void Extension(Utf8JsonWriter w, FinishedEvent done)
    {
        w.WriteStartObject("longctx");
        w.WriteString("strategy", done.Strategy);
        w.WriteStartArray("token_ids");
        foreach (var t in done.TokenIds) w.WriteNumberValue(t);
        w.WriteEndArray();
        w.WriteEndObject();
    }
}
