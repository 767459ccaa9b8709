using System.Text.Json;
using LongCtx.Sampling;

namespace LongCtx.Server;

/// <summary>
/// A choice's "logprobs": null when not asked for; for completions OpenAI's legacy object {"tokens",
/// "token_logprobs", "top_logprobs", "text_offset"}; for chat {"content": [{"token", "logprob", "bytes", "top_logprobs"}]}.
/// </summary>
internal sealed class LogprobsJson(TokenText text)
{
    /// <summary>JSON has no -Infinity; a token the model rules out (a logit of -inf) gets OpenAI's and vLLM's stand-in.</summary>
    private const float Impossible = -9999f;

    public void Write(Utf8JsonWriter w, bool chat, IReadOnlyList<TokenLogprob>? entries)
    {
        if (entries is null)
        {
            w.WriteNull("logprobs");
            return;
        }
        w.WriteStartObject("logprobs");
        if (chat) Chat(w, entries);
        else Legacy(w, entries);
        w.WriteEndObject();
    }

    private void Legacy(Utf8JsonWriter w, IReadOnlyList<TokenLogprob> entries)
    {
        w.WriteStartArray("tokens");
        foreach (var e in entries) w.WriteStringValue(text.Display(e.Token));
        w.WriteEndArray();
        w.WriteStartArray("token_logprobs");
        foreach (var e in entries)
        {
            if (e.Logprob is { } logprob) w.WriteNumberValue(Finite(logprob));
            else w.WriteNullValue();
        }
        w.WriteEndArray();
        w.WriteStartArray("top_logprobs");
        foreach (var e in entries)
        {
            if (e.Top is null || e.Logprob is null)
            {
                w.WriteNullValue();
                continue;
            }
            w.WriteStartObject();
            // As OpenAI: the token itself is always listed, after the most likely ones when it is not among them.
            // Two ids can show as the same text; an object keeps one key, the likelier.
            var shown = new HashSet<string>(StringComparer.Ordinal);
            foreach (var t in e.Top.Append(new TopLogprob(e.Token, e.Logprob.Value)).DistinctBy(t => t.Token))
            {
                string key = text.Display(t.Token);
                if (shown.Add(key)) w.WriteNumber(key, Finite(t.Logprob));
            }
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartArray("text_offset");
        foreach (var e in entries) w.WriteNumberValue(e.TextOffset);
        w.WriteEndArray();
    }

    private void Chat(Utf8JsonWriter w, IReadOnlyList<TokenLogprob> entries)
    {
        w.WriteStartArray("content");
        // Chat has no echo: every entry is a reply token, with its logprob and its most likely tokens.
        foreach (var e in entries)
        {
            w.WriteStartObject();
            Token(w, e.Token, e.Logprob!.Value);
            w.WriteStartArray("top_logprobs");
            foreach (var t in e.Top!)
            {
                w.WriteStartObject();
                Token(w, t.Token, t.Logprob);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }

    private void Token(Utf8JsonWriter w, int id, float logprob)
    {
        var bytes = text.Bytes(id);
        w.WriteString("token", TokenText.Display(bytes));
        w.WriteNumber("logprob", Finite(logprob));
        w.WriteStartArray("bytes");
        foreach (byte b in bytes) w.WriteNumberValue(b);
        w.WriteEndArray();
    }

    private static float Finite(float logprob) => float.IsNegativeInfinity(logprob) ? Impossible : logprob;
}
