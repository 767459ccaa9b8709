using System.Numerics.Tensors;
using LongCtx.Tensors;

namespace LongCtx.Backends;

/// <summary>The host's <see cref="ICompressionOps.KeyAttentionMass"/>, in float32.</summary>
public static class HostAttentionMass
{
    /// <summary>
    /// mass[j, g] = Σ over query rows i and the query heads h of KV group g of softmax_j(scale · q[i, h] · k[j, g]) under
    /// the layouts' mask (q [Tq, NH, D], k [Tk, NKV, D] and mass [Tk, NKV], row-major).
    /// </summary>
    public static void Compute(ReadOnlySpan<float> q, TokenLayout queries, int heads, ReadOnlySpan<float> k, TokenLayout keys, int kvHeads, int dim,
        float scale, Span<float> mass)
    {
        int tq = queries.Count, tk = keys.Count, group = heads / kvHeads;
        mass.Clear();
        var p = new float[tk];
        for (int i = 0; i < tq; i++)
            for (int h = 0; h < heads; h++)
            {
                int g = h / group;
                var qi = q.Slice((i * heads + h) * dim, dim);
                float max = float.NegativeInfinity;
                for (int j = 0; j < tk; j++)
                {
                    bool visible = keys.SeqIds[j] == queries.SeqIds[i] && keys.Positions[j] <= queries.Positions[i];
                    p[j] = visible ? scale * TensorPrimitives.Dot(qi, k.Slice((j * kvHeads + g) * dim, dim)) : float.NegativeInfinity;
                    max = Math.Max(max, p[j]);
                }
                if (float.IsNegativeInfinity(max)) continue;
                float sum = 0;
                for (int j = 0; j < tk; j++) sum += p[j] = float.IsNegativeInfinity(p[j]) ? 0 : MathF.Exp(p[j] - max);
                for (int j = 0; j < tk; j++) mass[j * kvHeads + g] += p[j] / sum;
            }
    }
}
