using LongCtx.Cuda.Ops;

namespace LongCtx.Tests.Gpu;

/// <summary>
/// A test that needs CUDA GPUs: skipped, with the reason shown, where there are fewer than
/// the minimum number of GPUs given (CI has none). On the GPU machine, which has no .NET SDK to run xunit,
/// tests/LongCtx.GpuTestRunner runs them (scripts/gpu.sh run, section tests).
/// </summary>
public sealed class GpuTheoryAttribute : TheoryAttribute
{
    public GpuTheoryAttribute(int minimumGpus = 1)
    {
        int n = AvailableGpus.Value;
        if (n == 0) Skip = "no CUDA GPU on this machine (the GPU round is scripts/gpu.sh)";
        else if (n < minimumGpus) Skip = $"needs {minimumGpus} GPUs; this machine has {n}";
    }

    public static readonly Lazy<int> AvailableGpus = new(() =>
    {
        try { return CudaBackend.DeviceCount(); }
        catch (LongCtxException) { return 0; } // no driver library: no GPU
    });
}
