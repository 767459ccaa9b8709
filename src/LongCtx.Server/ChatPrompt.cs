using LongCtx.Text;

namespace LongCtx.Server;

/// <summary>
/// Turns chat messages into prompt tokens with the model's template: the rendered text encoded whole, as
/// transformers' apply_chat_template(tokenize=True) does. An assistant message whose text the server generated
/// keeps the exact tokens generated for it (<see cref="ReplyTokens"/>), so that the next turn's prompt extends the
/// cached sequence token for token: the template is rendered again with a marker in place of each such reply,
/// and where the template carried the replies through unchanged, the text around the markers is encoded piece
/// by piece with the replies' tokens between; where it changed them (trimmed them, dropped a reasoning block),
/// the whole text is encoded.
/// </summary>
public static class ChatPrompt
{
    /// <param name="partition">whose replies may be reused (<see cref="GenerationParams.Partition"/>)</param>
    public static int[] Encode(ChatTemplate template, Tokenizer tokenizer, IReadOnlyList<ChatMessage> messages, ReplyTokens replies,
        IReadOnlyDictionary<string, object?>? kwargs = null, string partition = "")
    {
        string text = template.Render(messages, addGenerationPrompt: true, kwargs);
        var known = new List<(int Message, int[] Tokens)>();
        for (int i = 0; i < messages.Count; i++)
            if (messages[i].Role == "assistant" && replies.Find(messages[i].Content, partition) is { } generated) known.Add((i, generated));
        if (known.Count == 0) return tokenizer.Encode(text);

        var marked = messages.ToArray();
        for (int k = 0; k < known.Count; k++) marked[known[k].Message] = marked[known[k].Message] with { Content = Marker(k) };
        var pieces = Split(template.Render(marked, addGenerationPrompt: true, kwargs), known.Count);
        if (pieces is null || !Reassembles(pieces, known.Select(k => messages[k.Message].Content).ToList(), text)) return tokenizer.Encode(text);

        var ids = new List<int>(tokenizer.Encode(pieces[0]));
        for (int k = 0; k < known.Count; k++)
        {
            ids.AddRange(known[k].Tokens);
            ids.AddRange(tokenizer.Encode(pieces[k + 1]));
        }
        return ids.ToArray();
    }

    /// <summary>Private-use characters no prompt holds, numbered.</summary>
    private static string Marker(int k) => $"\uE000{k}\uE001";

    /// <summary>The text between the markers, when each appears once and in order; else null.</summary>
    private static List<string>? Split(string rendered, int count)
    {
        var pieces = new List<string>();
        int from = 0;
        for (int k = 0; k < count; k++)
        {
            string marker = Marker(k);
            int at = rendered.IndexOf(marker, from, StringComparison.Ordinal);
            if (at < 0 || rendered.IndexOf(marker, at + marker.Length, StringComparison.Ordinal) >= 0) return null;
            pieces.Add(rendered[from..at]);
            from = at + marker.Length;
        }
        pieces.Add(rendered[from..]);
        return pieces;
    }

    /// <summary>Whether the pieces with the replies' text between them are the real rendering: the template left the replies intact.</summary>
    private static bool Reassembles(List<string> pieces, List<string> replyTexts, string text)
    {
        int length = pieces.Sum(p => p.Length) + replyTexts.Sum(r => r.Length);
        if (length != text.Length) return false;
        int at = 0;
        for (int k = 0; k < pieces.Count; k++)
        {
            if (string.CompareOrdinal(text, at, pieces[k], 0, pieces[k].Length) != 0) return false;
            at += pieces[k].Length;
            if (k == replyTexts.Count) break;
            if (string.CompareOrdinal(text, at, replyTexts[k], 0, replyTexts[k].Length) != 0) return false;
            at += replyTexts[k].Length;
        }
        return true;
    }
}
