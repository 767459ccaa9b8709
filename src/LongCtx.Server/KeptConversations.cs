using System.Runtime.InteropServices;
using LongCtx.Engine;

namespace LongCtx.Server;

/// <summary>
/// Finished chat sequences whose KV stays on the ranks, most recent first, so that the next turn of a conversation (a
/// prompt that extends one's tokens) is a partial prefill. Each is kept in the partition of the request that made it
/// (its API key and cache_salt) and only a request of the same partition resumes it: whether another client sent a
/// conversation never shows in cached_tokens. Used only by the scheduler thread; the least recently used is released
/// when the list is full, or when the KV budget needs its room.
/// </summary>
internal sealed class KeptConversations(int capacity, Action<Sequence> release)
{
    private readonly LinkedList<(string Partition, Sequence Sequence)> _kept = new();

    public int Count => _kept.Count;

    /// <summary>Tokens whose KV the kept sequences hold.</summary>
    public long Tokens => _kept.Sum(k => (long)k.Sequence.CachedTokens);

    /// <summary>Removes and returns the partition's kept sequence with the most tokens that the prompt extends, if any.</summary>
    public Sequence? Take(string partition, int[] prompt)
    {
        LinkedListNode<(string Partition, Sequence Sequence)>? best = null;
        for (var node = _kept.First; node is not null; node = node.Next)
        {
            var (owner, sequence) = node.Value;
            var tokens = sequence.Tokens;
            if (owner == partition && tokens.Count < prompt.Length && (best is null || tokens.Count > best.Value.Sequence.Tokens.Count)
                && prompt.AsSpan(0, tokens.Count).SequenceEqual(CollectionsMarshal.AsSpan(tokens)))
                best = node;
        }
        if (best is null) return null;
        _kept.Remove(best);
        return best.Value.Sequence;
    }

    public void Keep(string partition, Sequence sequence)
    {
        _kept.AddFirst((partition, sequence));
        while (_kept.Count > capacity) ReleaseOldest();
    }

    /// <summary>Releases the least recently used; false when there is none.</summary>
    public bool ReleaseOldest()
    {
        if (_kept.Last is not { } last) return false;
        release(last.Value.Sequence);
        _kept.RemoveLast();
        return true;
    }

    public void Clear()
    {
        while (ReleaseOldest()) { }
    }
}
