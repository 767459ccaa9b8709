using LongCtx.Backends;
using LongCtx.Tensors;

namespace LongCtx.Approximate;

/// <summary>
/// The training-free compressor (SnapKV-style): an entry's score is the attention the query tokens embedded
/// in the context pay to it, softmax over the candidates, summed over the query tokens and over the query
/// heads of its KV group. Keys the question attends to are the ones worth passing to later blocks.
/// </summary>
public sealed class QueryAttentionScorer : IKvCompressor
{
    public string Name => "query-attention";

    public Tensor Score(CompressionInput input)
    {
        var layer = input.Layer;
        var b = layer.Backend;
        var mass = b.Allocate(DType.F32, input.Candidates.Count, layer.KvHeads);
        b.KeyAttentionMass(input.QueryQ, input.Queries, input.CandidateK, input.Candidates, layer.Rule.Scale, mass);
        return mass;
    }
}
