using LongCtx.Tensors;

namespace LongCtx.Backends;

/// <summary>
/// The two operations of APB's KV compression, run where the tensors are by a backend that implements this (the GPU
/// does: no download and no wait for the host in every layer); on the host by <see cref="BackendOps"/> otherwise.
/// </summary>
public interface ICompressionOps
{
    /// <summary>
    /// Per head, the rows of the highest scores: rows[i, h] (I32 [count, H], 0 &lt; count ≤ n) are the rows of head h's
    /// count highest scores[·, h] (F32 or the activation type, [n, H]) in ascending order; ties at the cut go to the
    /// earlier rows and NaN ranks as −inf (<see cref="HostSelection.TopRows"/>).
    /// </summary>
    void TopRowsPerHead(Tensor scores, int count, Tensor rows);

    /// <summary>
    /// The attention mass each key receives: mass[j, g] = Σ over query rows i and the query heads h of KV group g of
    /// softmax_j(scale · q[i, h] · k[j, g]) under the layouts' mask (q [Tq, NH, D], k [Tk, NKV, D], mass F32 [Tk, NKV])
    /// (<see cref="HostAttentionMass.Compute"/>).
    /// </summary>
    void KeyAttentionMass(Tensor q, TokenLayout queries, Tensor k, TokenLayout keys, float scale, Tensor mass);
}
