using LongCtx.Backends;
using LongCtx.Comm;
using LongCtx.Model;
using LongCtx.Tensors;

namespace LongCtx.Approximate;

/// <summary>
/// The trained compressor on one rank: runs each layer's retaining head (<see cref="RetainingHeadWeights"/>)
/// on the candidate entries with the backend's Linear and SwiGlu, so it runs wherever the model runs.
/// Under tensor parallelism a rank holds only its heads' q, k, v, so it keeps the matching input columns of
/// the gate and up matrices and sums the partial products over the tensor-parallel group — the row-parallel
/// pattern of the model's o projection — and the rows of down for its own KV heads.
/// </summary>
public sealed class RetainingHeadScorer : IKvCompressor, IDisposable
{
    private readonly IBackend _backend;
    private readonly Tensor[][] _layers;
    private readonly ICommunicator? _tensorParallel;
    private readonly List<IDisposable> _slicedWeights = [];

    /// <param name="tensorParallel">the ranks holding the model's other heads; null when this rank holds them all.</param>
    public RetainingHeadScorer(IBackend backend, RetainingHeadWeights weights, ICommunicator? tensorParallel = null)
    {
        _backend = backend;
        _tensorParallel = tensorParallel is { Size: > 1 } ? tensorParallel : null;
        _layers = weights.Layers.Select(l => Share(l).Select(backend.LoadWeight).ToArray()).ToArray();
    }

    /// <summary>This rank's share of one layer's head: the input columns of its q, k, v heads in the first six, its KV heads' rows of down.</summary>
    private HostTensor[] Share(HostTensor[] layer)
    {
        if (_tensorParallel is not { Rank: var t, Size: var size }) return layer;
        var share = layer[..6].Select(w => TensorParallelWeights.Columns(w, t * (w.Shape[1] / size), w.Shape[1] / size, _slicedWeights)).ToList();
        int kvHeads = layer[6].Shape[0] / size;
        share.Add(TensorParallelWeights.Rows(layer[6], t * kvHeads, kvHeads));
        return [.. share];
    }

    public string Name => "retaining-heads";

    public Tensor Score(CompressionInput input)
    {
        var b = _backend;
        var w = _layers[input.Layer.Layer];
        int n = input.Candidates.Count, hidden = w[0].Shape[0];
        Tensor[] x = [Flat(input.CandidateQ), Flat(input.CandidateK), Flat(input.CandidateV)];
        using var gate = Project(x, w[0..3], n, hidden);
        using var up = Project(x, w[3..6], n, hidden);
        _tensorParallel?.AllReduceSum(gate);
        _tensorParallel?.AllReduceSum(up);
        b.SwiGlu(gate, up, gate);
        var scores = b.Allocate(b.ActivationType, n, input.Layer.KvHeads);
        b.Linear(gate, w[6], null, scores);
        return scores;
    }

    /// <summary>Σ_i W_i · x_i: the product of [W_q W_k W_v] with [q | k | v], one column block at a time.</summary>
    private Tensor Project(Tensor[] x, Tensor[] w, int rows, int hidden)
    {
        var sum = _backend.Allocate(_backend.ActivationType, rows, hidden);
        using var part = _backend.Allocate(_backend.ActivationType, rows, hidden);
        _backend.Linear(x[0], w[0], null, sum);
        for (int i = 1; i < x.Length; i++)
        {
            _backend.Linear(x[i], w[i], null, part);
            _backend.Add(sum, part);
        }
        return sum;
    }

    private static Tensor Flat(Tensor t) => t.View(t.Rows, t.RowLength);

    public void Dispose()
    {
        foreach (var l in _layers) foreach (var t in l) t.Dispose();
        foreach (var w in _slicedWeights) w.Dispose();
    }
}
