namespace LongCtx.Server;

/// <summary>
/// The tokens generated for recent chat replies, by reply text. When a client sends a reply back as an
/// assistant message, its exact tokens are used instead of re-encoding the text (which may tokenize
/// differently, or lose special tokens the text left out), so the next turn's prompt extends the cached
/// sequence token for token. Thread-safe; keeps the most recent <c>capacity</c> replies.
/// </summary>
public sealed class ReplyTokens(int capacity)
{
    private readonly Dictionary<string, int[]> _byText = new(StringComparer.Ordinal);
    private readonly Queue<string> _order = new();

    public void Remember(string text, int[] tokens)
    {
        lock (_byText)
        {
            if (!_byText.ContainsKey(text)) _order.Enqueue(text);
            _byText[text] = tokens;
            while (_order.Count > capacity) _byText.Remove(_order.Dequeue());
        }
    }

    public int[]? Find(string text)
    {
        lock (_byText) return _byText.TryGetValue(text, out var t) ? t : null;
    }
}
