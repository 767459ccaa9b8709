using System.Reflection;
using LongCtx.Cuda.Ops;
using Xunit.Sdk;

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
        Skip = GpuDataAttribute.SkipReason(minimumGpus);
    }

    public static readonly Lazy<int> AvailableGpus = new(() =>
    {
        try { return CudaBackend.DeviceCount(); }
        catch (LongCtxException) { return 0; } // no driver library: no GPU
    });
}

/// <summary>
/// One case of a <see cref="GpuTheoryAttribute"/> test whose first argument is the number of GPUs it needs: skipped,
/// and counted as skipped, where there are fewer, instead of running on fewer GPUs and passing for what it did not run.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
public sealed class GpuDataAttribute : DataAttribute
{
    private readonly object[] _row;

    public GpuDataAttribute(int gpus, params object[] rest)
    {
        _row = [gpus, .. rest];
        // xunit reads a data row's Skip from the attribute instance, so a reason set here skips this row only.
        Skip = SkipReason(gpus);
    }

    public override IEnumerable<object[]> GetData(MethodInfo testMethod) => [_row];

    /// <summary>Why a test that needs <paramref name="gpus"/> GPUs cannot run here, or null when it can.</summary>
    public static string? SkipReason(int gpus) => GpuTheoryAttribute.AvailableGpus.Value switch
    {
        0 => "no CUDA GPU on this machine (the GPU round is scripts/gpu.sh)",
        var n when n < gpus => $"needs {gpus} GPUs; this machine has {n}",
        _ => null,
    };
}
