using System.Text.Json.Nodes;
using LongCtx.Text;
using LongCtx.Text.Jinja;

namespace LongCtx.Server;

/// <summary>One message of a chat request; <paramref name="ReasoningContent"/> is an assistant turn's reasoning, as Qwen3's template reads it.</summary>
public sealed record ChatMessage(string Role, string Content, string? ReasoningContent = null);

/// <summary>
/// The model's own chat template, rendered as transformers' apply_chat_template renders it: the Jinja template
/// with messages, add_generation_prompt, the tokenizer's special tokens (bos_token, eos_token...), tools absent
/// (None), and the request's chat_template_kwargs (enable_thinking...).
/// </summary>
public sealed class ChatTemplate
{
    /// <summary>Variables the renderer sets itself, which chat_template_kwargs may not replace (transformers refuses them too).</summary>
    public static readonly IReadOnlySet<string> ReservedVariables = new HashSet<string> { "messages", "add_generation_prompt", "tools", "documents" };

    private readonly JinjaTemplate _template;
    private readonly IReadOnlyDictionary<string, object?> _specialTokens;

    private ChatTemplate(JinjaTemplate template, IReadOnlyDictionary<string, object?> specialTokens)
    {
        _template = template;
        _specialTokens = specialTokens;
    }

    /// <summary>Where the template came from (a file, or tokenizer_config.json's chat_template).</summary>
    public string Name => _template.Name;

    /// <exception cref="TemplateException">The template does not parse.</exception>
    public static ChatTemplate Parse(string source, string name, IReadOnlyDictionary<string, object?>? specialTokens = null) =>
        new(JinjaTemplate.Parse(source, name), specialTokens ?? new Dictionary<string, object?>());

    /// <summary>
    /// The template of the tokenizer at <paramref name="tokenizerPath"/> (tokenizer.json or its directory), or
    /// <paramref name="templateFile"/> when given (--chat-template); null when there is neither.
    /// </summary>
    public static ChatTemplate? Load(string? tokenizerPath, string? templateFile = null)
    {
        string? dir = tokenizerPath is null ? null
            : Directory.Exists(tokenizerPath) ? tokenizerPath : Path.GetDirectoryName(Path.GetFullPath(tokenizerPath));
        var tokens = dir is null ? new Dictionary<string, object?>() : ChatTemplateFiles.SpecialTokens(dir);
        if (templateFile is not null)
        {
            if (!File.Exists(templateFile)) throw new LongCtxException($"--chat-template {templateFile}: no such file");
            return Parse(File.ReadAllText(templateFile), templateFile, tokens);
        }
        return dir is not null && ChatTemplateFiles.Find(dir) is var (source, name) ? Parse(source, name, tokens) : null;
    }

    /// <summary>The prompt text for <paramref name="messages"/>.</summary>
    /// <exception cref="TemplateException">The template refused the messages (raise_exception) or failed on them.</exception>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true,
        IReadOnlyDictionary<string, object?>? kwargs = null, Func<DateTime>? now = null) =>
        RenderValues(messages.Select(m =>
        {
            var d = new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content };
            if (m.ReasoningContent is not null) d["reasoning_content"] = m.ReasoningContent;
            return (object?)d;
        }).ToList(), addGenerationPrompt, kwargs, now);

    /// <summary>As <see cref="Render(IReadOnlyList{ChatMessage}, bool, IReadOnlyDictionary{string, object?}?, Func{DateTime}?)"/>, for messages as JSON (any fields).</summary>
    public string RenderJson(JsonArray messages, bool addGenerationPrompt = true, IReadOnlyDictionary<string, object?>? kwargs = null, Func<DateTime>? now = null) =>
        RenderValues(messages.Select(m => (object?)m).ToList(), addGenerationPrompt, kwargs, now);

    private string RenderValues(List<object?> messages, bool addGenerationPrompt, IReadOnlyDictionary<string, object?>? kwargs, Func<DateTime>? now)
    {
        var vars = new Dictionary<string, object?>(_specialTokens, StringComparer.Ordinal);
        foreach (var (name, value) in kwargs ?? new Dictionary<string, object?>())
        {
            if (ReservedVariables.Contains(name)) throw new ArgumentException($"'{name}' is set by the renderer, not by template kwargs", nameof(kwargs));
            vars[name] = value;
        }
        vars["messages"] = messages;
        vars["tools"] = null;
        vars["documents"] = null;
        vars["add_generation_prompt"] = addGenerationPrompt;
        return _template.Render(vars, now);
    }

    /// <summary>
    /// The token that ends an assistant turn in this template (Llama 3's &lt;|eot_id|&gt;, ChatML's &lt;|im_end|&gt;...):
    /// the special token right after an assistant message in a rendered conversation; null when there is none.
    /// </summary>
    public int? EndOfTurnToken(Tokenizer tokenizer)
    {
        const string reply = "\uE000reply\uE001";
        string text;
        try { text = Render([new("user", "Hi"), new("assistant", reply), new("user", "Bye")]); }
        catch (TemplateException) { return null; }
        int at = text.IndexOf(reply, StringComparison.Ordinal);
        if (at < 0) return null;
        int[] ids = tokenizer.Encode(text[(at + reply.Length)..].TrimStart());
        // Only a special token ends a turn; plain text after a reply (a space, a newline) does not.
        return ids.Length > 0 && tokenizer.Decode([ids[0]], skipSpecialTokens: true).Length == 0 ? ids[0] : null;
    }
}
