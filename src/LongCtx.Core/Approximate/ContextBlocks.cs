using LongCtx.ContextParallel;
using LongCtx.Tensors;

namespace LongCtx.Approximate;

/// <summary>
/// How Star Attention and APB lay one prompt over N ranks: the prompt is a document of D tokens followed
/// by a query of K tokens. The document is split contiguously: rank r owns block r, positions
/// [BlockStart(r), BlockStart(r) + BlockLength(r)), the blocks equal (as the papers split it) or of the lengths
/// given (<see cref="BlockBalance"/>: even work per rank). Every rank r > 0 prepends a copy of the
/// anchor (the document's first l_a tokens, which open block 0 anyway), computed redundantly and not kept.
/// With APB every rank also carries the query after its block (the query "embedded in the anchor"), at the
/// query's true positions, so compression can be query-aware. A rank's rows in the context phase are:
///
///   rank 0:  | block 0 (starts with the anchor)  | query (APB) |
///   rank r:  | anchor copy | block r              | query (APB) |
///
/// The query's rows there only score and are dropped; the query itself is computed exactly afterwards, as
/// in Star Attention's phase 2, against every rank's kept blocks (<see cref="QueryKeys"/>).
/// </summary>
public sealed class ContextBlocks
{
    /// <summary>A sequence id no query row has: marks the padding rows of a passing block as invisible.</summary>
    public const int NoSequence = -1;

    private readonly int[] _starts;

    /// <param name="blockLengths">each rank's block length, at least 1, summing to the document; null: equal blocks.</param>
    public ContextBlocks(int ranks, int documentTokens, int queryTokens, int anchorTokens, int passingTokens, bool embedQuery,
        IReadOnlyList<int>? blockLengths = null)
    {
        RequireBlockPerRank(documentTokens, ranks);
        if (queryTokens < 1) throw new SettingException(Setting.Query, "star and apb need a query of at least one token");
        Ranks = ranks;
        DocumentTokens = documentTokens;
        QueryTokens = queryTokens;
        _starts = blockLengths is null ? ShardPlan.ChunkStarts(documentTokens, ranks) : Starts(blockLengths, documentTokens, ranks);
        // The anchor lies inside block 0, where rank 0 computes it as part of its own block.
        AnchorTokens = Math.Clamp(anchorTokens, 0, BlockLength(0));
        PassingTokens = Math.Max(0, passingTokens);
        EmbeddedQuery = embedQuery ? queryTokens : 0;
    }

    /// <summary>Every rank needs a block of at least one token (checked before the block lengths are chosen, too).</summary>
    public static void RequireBlockPerRank(int documentTokens, int ranks)
    {
        if (documentTokens < ranks)
            throw new LongCtxException($"the document has {documentTokens} tokens, fewer than the {ranks} ranks it is split over: use fewer ranks or an exact strategy");
    }

    private static int[] Starts(IReadOnlyList<int> lengths, int documentTokens, int ranks)
    {
        if (lengths.Count != ranks || lengths.Any(b => b < 1) || lengths.Sum(b => (long)b) != documentTokens)
            throw new ArgumentException($"block lengths [{string.Join(", ", lengths)}] do not split {documentTokens} tokens into {ranks} blocks");
        var starts = new int[ranks + 1];
        for (int r = 0; r < ranks; r++) starts[r + 1] = starts[r] + lengths[r];
        return starts;
    }

    public int Ranks { get; }
    public int DocumentTokens { get; }
    public int QueryTokens { get; }
    public int AnchorTokens { get; }
    public int PassingTokens { get; }
    /// <summary>Query rows each rank carries in the context phase (APB: K; Star: 0).</summary>
    public int EmbeddedQuery { get; }

    public int BlockStart(int rank) => _starts[rank];
    public int BlockLength(int rank) => _starts[rank + 1] - _starts[rank];
    /// <summary>Rows of anchor copy at the top of a rank's rows (rank 0 has none: its block starts with the anchor).</summary>
    public int AnchorCopy(int rank) => rank == 0 ? 0 : AnchorTokens;
    public int ContextRows(int rank) => AnchorCopy(rank) + BlockLength(rank) + EmbeddedQuery;

    /// <summary>
    /// The block entries a rank may pass on: all of its block, except that rank 0 leaves out the anchor,
    /// which every rank holds already (passing it would count it twice).
    /// </summary>
    public int CandidateStart(int rank) => rank == 0 ? AnchorTokens : 0;
    public int Candidates(int rank) => BlockLength(rank) - CandidateStart(rank);
    /// <summary>Entries per KV head rank r passes on: l_p, or all its candidates when it has fewer.</summary>
    public int Passed(int rank) => Math.Min(PassingTokens, Candidates(rank));
    /// <summary>
    /// Rows every rank sends in the per-layer all-gather (a collective needs one shape): the most any rank
    /// that has a successor passes; ranks that pass fewer pad with invisible rows.
    /// </summary>
    public int PassedRows => Ranks == 1 ? 0 : Enumerable.Range(0, Ranks - 1).Max(Passed);

    /// <summary>The global positions of a rank's context rows (RoPE and the causal mask both use them).</summary>
    public TokenLayout ContextLayout(int rank)
    {
        var positions = Enumerable.Range(0, AnchorCopy(rank))
            .Concat(Enumerable.Range(BlockStart(rank), BlockLength(rank)))
            .Concat(Enumerable.Range(DocumentTokens, EmbeddedQuery)).ToArray();
        return new TokenLayout(new int[positions.Length], positions);
    }

    /// <summary>The prompt tokens of a rank's context rows.</summary>
    public int[] ContextTokens(int rank, int[] prompt) => ContextLayout(rank).Positions.Select(p => prompt[p]).ToArray();

    /// <summary>
    /// The mask layout of the passing block rank r attends to, the all-gathered rows of ranks 0..r−1: the
    /// i-th entry rank s passes carries position (start of s's candidates) + i, inside s's candidate range,
    /// so every block row and query row of rank r sees all of them (they all come later) and no anchor row
    /// does (the anchor attends only to itself, as in exact attention); padding rows belong to no sequence.
    /// The positions only mask (the keys were rotated at their true positions before selection); being
    /// distinct and increasing, they let the GPU run the call as dense blocks (cuDNN) instead of a masked kernel.
    /// </summary>
    public TokenLayout PassingLayout(int rank)
    {
        int rows = PassedRows;
        var seq = new int[rank * rows];
        var pos = new int[rank * rows];
        for (int s = 0; s < rank; s++)
            for (int i = 0; i < rows; i++)
            {
                seq[s * rows + i] = i < Passed(s) ? 0 : NoSequence;
                pos[s * rows + i] = BlockStart(s) + CandidateStart(s) + Math.Min(i, Candidates(s) - 1);
            }
        return new TokenLayout(seq, pos);
    }

    /// <summary>The positions a rank keeps after prefill: its block, and on the last rank also the query (where decoding continues).</summary>
    public IEnumerable<int> KeptPositions(int rank) => Enumerable.Range(BlockStart(rank), BlockLength(rank))
        .Concat(rank == Ranks - 1 ? Enumerable.Range(DocumentTokens, QueryTokens) : []);

    /// <summary>The query's rows, replicated on every rank in the query phase.</summary>
    public TokenLayout QueryLayout => new(new int[QueryTokens], Enumerable.Range(DocumentTokens, QueryTokens).ToArray());

    /// <summary>The KV each rank holds during the query phase: its block, plus the query's own KV on the last rank.</summary>
    public TokenLayout[] QueryKeys => Enumerable.Range(0, Ranks).Select(r =>
    {
        var p = KeptPositions(r).ToArray();
        return new TokenLayout(new int[p.Length], p);
    }).ToArray();

    public override string ToString() =>
        $"document {DocumentTokens} in {Ranks} blocks of {string.Join("/", Enumerable.Range(0, Ranks).Select(BlockLength))}, query {QueryTokens}, anchor {AnchorTokens}, passing {PassingTokens}";
}
