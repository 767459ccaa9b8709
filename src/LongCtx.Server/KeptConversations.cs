using LongCtx.Engine;

namespace LongCtx.Server;

/// <summary>
/// Finished chat sequences whose KV stays on the ranks, most recent first, so that the next turn of a
/// conversation (a prompt that extends one's tokens) is a partial prefill. Used only by the scheduler
/// thread; the least recently used is released when the list is full.
/// </summary>
internal sealed class KeptConversations(int capacity, Action<Sequence> release)
{
    private readonly LinkedList<Sequence> _kept = new();

    public int Count => _kept.Count;

    /// <summary>Removes and returns the kept sequence with the most tokens that the prompt extends, if any.</summary>
    public Sequence? Take(int[] prompt)
    {
        LinkedListNode<Sequence>? best = null;
        for (var node = _kept.First; node is not null; node = node.Next)
        {
            var tokens = node.Value.Tokens;
            if (tokens.Count < prompt.Length && (best is null || tokens.Count > best.Value.Tokens.Count)
                && prompt.AsSpan(0, tokens.Count).SequenceEqual(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(tokens)))
                best = node;
        }
        if (best is null) return null;
        _kept.Remove(best);
        return best.Value;
    }

    public void Keep(Sequence sequence)
    {
        _kept.AddFirst(sequence);
        while (_kept.Count > capacity)
        {
            release(_kept.Last!.Value);
            _kept.RemoveLast();
        }
    }

    public void Clear()
    {
        foreach (var s in _kept) release(s);
        _kept.Clear();
    }
}
