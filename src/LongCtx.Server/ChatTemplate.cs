using System.Text.Json.Nodes;
using LongCtx.Text;

namespace LongCtx.Server;

/// <summary>One message of a chat request.</summary>
public sealed record ChatMessage(string Role, string Content);

/// <summary>
/// A model family's chat format: how messages become the prompt, and the token that ends a turn (a stop
/// token for the reply). Only the plain formats are built in (no tools, no reasoning blocks); a model
/// whose format is not recognised serves completions but not chat.
/// </summary>
public sealed class ChatTemplate
{
    private readonly string _begin;
    private readonly Func<string, string> _header;
    private readonly string _endOfTurn;
    private readonly bool _trim;

    private ChatTemplate(string name, string begin, Func<string, string> header, string endOfTurn, bool trim)
    {
        Name = name;
        _begin = begin;
        _header = header;
        _endOfTurn = endOfTurn;
        _trim = trim;
    }

    public string Name { get; }
    public string EndOfTurn => _endOfTurn;

    /// <summary>Llama 3: &lt;|begin_of_text|&gt; then header, content (trimmed, as Meta's template does), &lt;|eot_id|&gt;.</summary>
    public static readonly ChatTemplate Llama3 = new("llama3", "<|begin_of_text|>",
        role => $"<|start_header_id|>{role}<|end_header_id|>\n\n", "<|eot_id|>", trim: true);

    /// <summary>ChatML (Qwen): &lt;|im_start|&gt;role\ncontent&lt;|im_end|&gt;\n.</summary>
    public static readonly ChatTemplate ChatMl = new("chatml", "",
        role => $"<|im_start|>{role}\n", "<|im_end|>", trim: false);

    /// <summary>
    /// The template of a tokenizer: recognised by its tokens in tokenizer_config.json's chat_template,
    /// else by the tokens in the vocabulary; null when neither names a known format.
    /// </summary>
    public static ChatTemplate? Detect(Tokenizer tokenizer, string? tokenizerPath)
    {
        string? source = tokenizerPath is null ? null : ReadChatTemplate(tokenizerPath);
        foreach (var t in new[] { Llama3, ChatMl })
        {
            bool named = source is not null ? source.Contains(t.EndOfTurn) : tokenizer.TokenToId(t.EndOfTurn) is not null;
            if (named && tokenizer.TokenToId(t.EndOfTurn) is not null) return t;
        }
        return null;
    }

    private static string? ReadChatTemplate(string tokenizerPath)
    {
        string dir = Directory.Exists(tokenizerPath) ? tokenizerPath : Path.GetDirectoryName(Path.GetFullPath(tokenizerPath))!;
        string path = Path.Combine(dir, "tokenizer_config.json");
        if (!File.Exists(path)) return null;
        try { return JsonNode.Parse(File.ReadAllText(path))?["chat_template"] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null; }
        catch (System.Text.Json.JsonException e) { throw new LongCtxException($"{path}: not valid JSON ({e.Message})"); }
    }

    /// <summary>
    /// The prompt's pieces in order, each either template text (with special tokens) or a message's
    /// content. Pieces are encoded one by one, so an assistant message can be replaced by the exact tokens
    /// that were generated for it (<see cref="ReplyTokens"/>); every piece boundary sits at a special
    /// token, where the tokenizer splits anyway, so this equals encoding the whole string.
    /// </summary>
    public IEnumerable<(string Text, ChatMessage? Content)> Pieces(IReadOnlyList<ChatMessage> messages)
    {
        yield return (_begin, null);
        foreach (var m in messages)
        {
            yield return (_header(m.Role), null);
            yield return (_trim ? m.Content.Trim() : m.Content, m);
            yield return (_endOfTurn + (_trim ? "" : "\n"), null);
        }
        yield return (_header("assistant"), null);
    }

    /// <summary>The prompt as one string (what Hugging Face's apply_chat_template with add_generation_prompt renders).</summary>
    public string Render(IReadOnlyList<ChatMessage> messages) => string.Concat(Pieces(messages).Select(p => p.Text));
}
