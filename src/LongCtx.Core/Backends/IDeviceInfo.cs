namespace LongCtx.Backends;

/// <summary>
/// What a front end may ask of the device a backend runs on, whatever the device: its name, its memory, a profile of
/// where its time went, and which attention implementation ran.
/// </summary>
public interface IDeviceInfo
{
    string Name { get; }

    long TotalMemoryBytes { get; }

    /// <summary>Memory still to be had for tensors: free on the device plus what the backend keeps cached for reuse.</summary>
    long AvailableMemoryBytes();

    /// <summary>Starts recording where the device's time goes (GEMM, attention, communication wait, ...).</summary>
    void StartProfiling();

    /// <summary>Milliseconds per category since <see cref="StartProfiling"/>, and stops recording; empty where the device keeps no profile.</summary>
    IReadOnlyDictionary<string, double> StopProfiling();

    /// <summary>Which attention implementation the calls so far ran, and why another did not; null where there is only one.</summary>
    string? AttentionReport();
}
