using System.Diagnostics;
using LongCtx.Backends;
using LongCtx.Tensors;

namespace LongCtx.Engine;

/// <summary>
/// How far a prefill is: the layers done of all it runs (each piece of a chunked prefill runs every layer), by the
/// lead rank's count, and the time since it began.
/// </summary>
public readonly record struct PrefillProgress(int LayersDone, int Layers, TimeSpan Elapsed)
{
    public double Fraction => Layers == 0 ? 1 : (double)LayersDone / Layers;

    /// <summary>The time left if the layers still to run take what the done ones took on average; null before the first.</summary>
    public TimeSpan? Remaining => LayersDone == 0 ? null : Elapsed * ((double)(Layers - LayersDone) / LayersDone);
}

/// <summary>Counts one prefill's layers as the lead rank finishes them, for <see cref="InferenceEngine.OnPrefillProgress"/>.</summary>
internal sealed class PrefillProgressCounter(int layers, Action<PrefillProgress> report)
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private int _done;
    private float[]? _row;

    /// <param name="hidden">the hidden states the layer wrote</param>
    public void LayerDone(IBackend backend, Tensor hidden)
    {
        // A GPU's host runs ahead of it: reading one row back waits until the layer has run, so what is counted is done.
        if (hidden.Rows > 0) backend.Download<float>(hidden.SliceRows(0, 1), _row ??= new float[hidden.RowLength]);
        report(new PrefillProgress(++_done, layers, _clock.Elapsed));
    }
}
