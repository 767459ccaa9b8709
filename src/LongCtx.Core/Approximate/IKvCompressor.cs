using LongCtx.ContextParallel;
using LongCtx.Tensors;

namespace LongCtx.Approximate;

/// <summary>
/// What a compressor sees of one layer on one rank: the candidate block entries (their q, k, v after RoPE,
/// and layout) and the query rows embedded in the context (their q and layout).
/// </summary>
public sealed record CompressionInput(AttentionLayer Layer, Tensor CandidateQ, Tensor CandidateK, Tensor CandidateV, TokenLayout Candidates,
    Tensor QueryQ, TokenLayout Queries);

/// <summary>
/// Scores a rank's block entries for APB's compression: higher means more worth passing on. Returns
/// scores [candidates, NKV] (F32 or the activation type), one per entry and KV head; <see cref="KvCompression"/> keeps the top l_p of
/// each head. One instance serves one rank (it may hold weights on that rank's backend).
/// </summary>
public interface IKvCompressor
{
    string Name { get; }
    Tensor Score(CompressionInput input);
}
