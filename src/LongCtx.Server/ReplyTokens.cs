namespace LongCtx.Server;

/// <summary>
/// The tokens generated for recent chat replies, by reply text. When a client sends a reply back as an
/// assistant message, its exact tokens are used instead of re-encoding the text (which may tokenize
/// differently, or lose special tokens the text left out), so the next turn's prompt extends the cached
/// sequence token for token. Replies are kept per partition (an API key and a cache_salt, <see cref="GenerationParams.Partition"/>),
/// as kept conversations are. Thread-safe; keeps the most recent <c>capacity</c> replies.
/// </summary>
public sealed class ReplyTokens(int capacity)
{
    private readonly Dictionary<(string Partition, string Text), int[]> _byText = [];
    private readonly Queue<(string, string)> _order = new();

    public void Remember(string text, int[] tokens, string partition = "")
    {
        lock (_byText)
        {
            if (!_byText.ContainsKey((partition, text))) _order.Enqueue((partition, text));
            _byText[(partition, text)] = tokens;
            while (_order.Count > capacity) _byText.Remove(_order.Dequeue());
        }
    }

    public int[]? Find(string text, string partition = "")
    {
        lock (_byText) return _byText.TryGetValue((partition, text), out var t) ? t : null;
    }
}
