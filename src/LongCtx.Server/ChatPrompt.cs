using LongCtx.Text;

namespace LongCtx.Server;

/// <summary>Turns chat messages into prompt tokens with the model's template.</summary>
public static class ChatPrompt
{
    public static int[] Encode(ChatTemplate template, Tokenizer tokenizer, IReadOnlyList<ChatMessage> messages, ReplyTokens replies)
    {
        var ids = new List<int>();
        foreach (var (text, message) in template.Pieces(messages))
        {
            if (message?.Role == "assistant" && replies.Find(message.Content) is { } generated) ids.AddRange(generated);
            else ids.AddRange(tokenizer.Encode(text));
        }
        return ids.ToArray();
    }
}
