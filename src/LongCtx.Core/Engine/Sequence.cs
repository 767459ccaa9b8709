using LongCtx.ContextParallel;

namespace LongCtx.Engine;

/// <summary>
/// A request's state that outlives one call: every token it has seen (prompt turns and generated
/// tokens whose KV is cached) and where that KV lives over the ranks. The next turn is a partial
/// prefill against it.
/// </summary>
public sealed class Sequence
{
    internal Sequence(int id, int ranks)
    {
        Id = id;
        Placement = new KvPlacement(ranks);
    }

    public int Id { get; }
    /// <summary>Tokens whose KV is in the cache, in order.</summary>
    public List<int> Tokens { get; } = [];
    public KvPlacement Placement { get; }
    public int CachedTokens => Placement.Count;
}
