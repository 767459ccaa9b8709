using LongCtx.ContextParallel;
using LongCtx.Tensors;

namespace LongCtx.Approximate;

/// <summary>
/// APB's context phase (arXiv 2502.12085 §3), per layer on rank r, whose rows are
/// [anchor copy | block r | query] (<see cref="ContextBlocks"/>):
///   1. compress: score block r's entries with the compressor (query-aware: the query rows are at hand)
///      and keep the top l_p per KV head — C_r;
///   2. communicate: one all-gather of every rank's C (l_p rows each);
///   3. attend: every row to [anchor | block r | query] causally by global position, and block and query
///      rows also to the passing block P_r = [C_0 | … | C_{r−1}], fully visible; the two partial results
///      merge by log-sum-exp (the paper's one masked kernel call, as two calls and a merge);
///   4. the passing block is dropped with the layer; only block r's KV is stored.
/// The query rows here serve the compressor; the query's real output comes from the query phase
/// (<see cref="DistributedDecode"/>), exact over every rank's kept KV. Block rows do not attend to the
/// query rows, so a document's KV does not depend on its question, and with l_p ≥ block length APB is
/// exact attention.
/// </summary>
public sealed class ApbAttention(ContextBlocks blocks, IKvCompressor compressor) : IAttentionStrategy
{
    public string Name => "apb";

    public Tensor Attend(AttentionLayer layer, Tensor q, Tensor k, Tensor v)
    {
        var b = layer.Backend;
        int rank = layer.Rank, passedRows = blocks.PassedRows;
        LocalKv.Store(layer, k, v);
        var rows = blocks.ContextLayout(rank);
        var acc = new PartialAttention(b, q.Rows, layer.Heads, layer.HeadDim);
        if (LocalKv.Attend(layer, q, rows, k, v, rows) is { } local) acc.Add(local.Output, local.Lse);
        if (passedRows == 0) return acc.Result();

        using var sendK = b.Allocate(b.ActivationType, passedRows, layer.KvHeads, layer.HeadDim);
        using var sendV = b.Allocate(b.ActivationType, passedRows, layer.KvHeads, layer.HeadDim);
        // The last rank has no successor: it sends padding, since the all-gather needs every rank.
        if (rank < layer.Ranks - 1) Compress(layer, q, k, v, sendK, sendV);
        using var allK = b.Allocate(b.ActivationType, layer.Ranks * passedRows, layer.KvHeads, layer.HeadDim);
        using var allV = b.Allocate(b.ActivationType, layer.Ranks * passedRows, layer.KvHeads, layer.HeadDim);
        layer.Comm.AllGatherEach([sendK, sendV], [allK, allV]);
        if (rank > 0 && LocalKv.Attend(layer, q, rows, allK.SliceRows(0, rank * passedRows), allV.SliceRows(0, rank * passedRows),
                blocks.PassingLayout(rank)) is { } passing)
            acc.Add(passing.Output, passing.Lse);
        return acc.Result();
    }

    /// <summary>Fills the first Passed(rank) rows of sendK, sendV with this rank's compressed block.</summary>
    private void Compress(AttentionLayer layer, Tensor q, Tensor k, Tensor v, Tensor sendK, Tensor sendV)
    {
        int rank = layer.Rank, start = blocks.AnchorCopy(rank) + blocks.CandidateStart(rank), n = blocks.Candidates(rank), count = blocks.Passed(rank);
        if (count == 0) return;
        var candK = k.SliceRows(start, n);
        var candV = v.SliceRows(start, n);
        if (count == n)
        {
            // Everything fits: pass the block as it is, no scoring needed.
            layer.Backend.Copy(candK, sendK.SliceRows(0, n));
            layer.Backend.Copy(candV, sendV.SliceRows(0, n));
            return;
        }
        var rows = blocks.ContextLayout(rank);
        int queryStart = q.Rows - blocks.EmbeddedQuery;
        var input = new CompressionInput(layer, q.SliceRows(start, n), candK, candV, rows.Slice(start, n),
            q.SliceRows(queryStart, blocks.EmbeddedQuery), rows.Slice(queryStart, blocks.EmbeddedQuery));
        using var scores = compressor.Score(input);
        using var kept = layer.Backend.Scratch(DType.I32, count, layer.KvHeads);
        KvCompression.Compress(layer, scores, candK, candV, count, sendK.SliceRows(0, count), sendV.SliceRows(0, count), kept);
    }
}
