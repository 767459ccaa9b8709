using LongCtx.Server;
using LongCtx.Text;

namespace LongCtx.Cli;

/// <summary>A chat through the model's template: the messages so far, and the exact tokens of each reply for the next turn's prompt.</summary>
internal sealed class TemplateConversation(ChatTemplate template, Tokenizer tokenizer)
{
    private readonly List<ChatMessage> _messages = [];
    private readonly ReplyTokens _replies = new(capacity: 4096);

    public int? EndOfTurn { get; } = template.EndOfTurnToken(tokenizer);

    public int[] AddUserTurn(string text)
    {
        _messages.Add(new ChatMessage("user", text));
        return ChatPrompt.Encode(template, tokenizer, _messages, _replies);
    }

    public void AddReply(IReadOnlyList<int> generated, IReadOnlySet<int> stopTokens)
    {
        int[] reply = generated.Count > 0 && stopTokens.Contains(generated[^1]) ? [.. generated.Take(generated.Count - 1)] : [.. generated];
        string text = tokenizer.Decode(reply, skipSpecialTokens: true);
        _replies.Remember(text, reply);
        _messages.Add(new ChatMessage("assistant", text));
    }
}
