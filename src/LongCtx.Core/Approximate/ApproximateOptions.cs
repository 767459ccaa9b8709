namespace LongCtx.Approximate;

/// <summary>
/// How a Star or APB prefill splits its prompt: the query's length (the prompt's last QueryTokens tokens),
/// anchor and passing lengths (null: <see cref="ApproximateDefaults"/>), and APB's compressor weights
/// (null: the training-free query-attention scorer). AllowInAuto lets --strategy auto pick APB. EvenBlocks splits the
/// document into equal blocks, as the papers do, instead of blocks that give every rank the same work (<see cref="BlockBalance"/>).
/// </summary>
public sealed record ApproximateOptions(
    int QueryTokens,
    int? AnchorTokens = null,
    int? PassingTokens = null,
    RetainingHeadWeights? RetainingHeads = null,
    bool AllowInAuto = false,
    bool EvenBlocks = false);

/// <summary>
/// Default anchor (l_a) and passing (l_p) lengths from the document length D and rank count N, through the
/// block length B = ⌈D/N⌉. Star Attention's paper sets the anchor to the whole block (l_a = B). APB keeps
/// the anchor smaller than Star's and passes a compressed block a fraction of the block's size; its
/// configurations scale both with the block, which we follow as l_a = B/4, l_p = B/8 (docs/APB.md has the
/// resulting table for 32K–1M tokens on 2–8 ranks, and says where this reading of the paper is unchecked).
/// </summary>
public static class ApproximateDefaults
{
    public static int BlockLength(int documentTokens, int ranks) => (documentTokens + ranks - 1) / Math.Max(1, ranks);

    public static int AnchorTokens(bool apb, int documentTokens, int ranks)
    {
        int block = BlockLength(documentTokens, ranks);
        return apb ? Math.Max(1, block / 4) : block;
    }

    public static int PassingTokens(int documentTokens, int ranks) => Math.Max(1, BlockLength(documentTokens, ranks) / 8);

    /// <summary>The query when none is given: the prompt's last T/16 tokens, at least 1 and at most 64.</summary>
    public static int QueryTokens(int promptTokens) => Math.Clamp(promptTokens / 16, 1, 64);
}
