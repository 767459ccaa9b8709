namespace LongCtx.ContextParallel;

/// <summary>
/// One sequence of a prefill batch: <see cref="NewTokens"/> tokens at positions
/// [Cached, Cached + NewTokens) that attend to the sequence's <see cref="Cached"/> earlier tokens, whose KV
/// already lives on the ranks as <see cref="Cached"/>'s placement says.
/// </summary>
public sealed record SequenceInput(int SeqId, int NewTokens, KvPlacement Cached)
{
    public int CachedTokens => Cached.Count;
}

/// <summary>
/// Where one sequence's KV cache lives: for every rank, the global positions of the tokens whose KV it
/// holds, in the order it holds them. Every rank keeps an identical copy, updated from the same plans,
/// so a rank knows the layout of any block it receives without asking.
/// </summary>
public sealed class KvPlacement
{
    private readonly List<int>[] _positions;

    public KvPlacement(int ranks)
    {
        _positions = new List<int>[ranks];
        for (int r = 0; r < ranks; r++) _positions[r] = [];
    }

    public int Ranks => _positions.Length;
    public int Count => _positions.Sum(p => p.Count);
    /// <summary>The positions rank <paramref name="rank"/> holds, in the order it holds them (valid until the next Append).</summary>
    public ReadOnlySpan<int> On(int rank) => System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_positions[rank]);

    public void Append(int rank, IEnumerable<int> positions) => _positions[rank].AddRange(positions);
}
