using LongCtx.Cuda.Native;

namespace LongCtx.Cuda.Runtime;

/// <summary>
/// Where the compute stream's time goes, measured with CUDA events around each operation (no host
/// synchronisation while running): GEMMs, attention, and waiting for communication — a wait recorded
/// between two events on the compute stream is exactly the transfer time attention did not hide.
/// </summary>
internal sealed class StreamProfiler(nint stream)
{
    private readonly List<(string Category, nint Start, nint End)> _spans = [];

    public nint Begin() => Record();

    public void End(string category, nint start) => _spans.Add((category, start, Record()));

    /// <summary>Milliseconds per category since the last call; waits for the stream.</summary>
    public Dictionary<string, double> Collect()
    {
        CudaDriver.Check(CudaDriver.cuStreamSynchronize(stream), "cuStreamSynchronize");
        var totals = new Dictionary<string, double>();
        foreach (var (category, start, end) in _spans)
        {
            CudaDriver.Check(CudaDriver.cuEventElapsedTime(out float ms, start, end), "cuEventElapsedTime");
            totals[category] = totals.GetValueOrDefault(category) + ms;
            CudaDriver.cuEventDestroy(start);
            CudaDriver.cuEventDestroy(end);
        }
        _spans.Clear();
        return totals;
    }

    private nint Record()
    {
        CudaDriver.Check(CudaDriver.cuEventCreate(out var ev, 0), "cuEventCreate");
        CudaDriver.Check(CudaDriver.cuEventRecord(ev, stream), "cuEventRecord");
        return ev;
    }
}
