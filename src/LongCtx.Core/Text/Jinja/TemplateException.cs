namespace LongCtx.Text.Jinja;

/// <summary>
/// A template that does not parse, or fails while rendering: the message names the template and the line.
/// <see cref="Raised"/> marks the template's own <c>raise_exception(...)</c>, whose message is the template
/// author's (e.g. "Conversation roles must alternate user/assistant/user/assistant/...").
/// </summary>
public sealed class TemplateException : LongCtxException
{
    public TemplateException(string template, int line, string message)
        : base($"{template}, line {line}: {message}") => Detail = message;

    private TemplateException(string message) : base(message)
    {
        Detail = message;
        Raised = true;
    }

    /// <summary>The message without the template's name and line.</summary>
    public string Detail { get; }

    public bool Raised { get; }

    internal static TemplateException FromTemplate(string message) => new(message);
}
