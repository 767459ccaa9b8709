namespace LongCtx.Engine;

/// <summary>
/// The ranks of one context-parallel group — each, under tensor parallelism, a group of TensorRanks ranks
/// sharing its layers — and a way to run the same work on all of them at once (SPMD): threads over CPU
/// backends in one process, GPUs, or one rank per process.
/// </summary>
public interface IRankGroup : IDisposable
{
    /// <summary>Ranks of the context-parallel ring (shards of the context).</summary>
    int ContextRanks { get; }
    /// <summary>Ranks each layer is split over (1: no tensor parallelism).</summary>
    int TensorRanks { get; }
    /// <summary>The backend's name and devices, for logs and --json output.</summary>
    string Device { get; }
    /// <summary>
    /// The world rank of the first rank this process runs: it computes the logits the host reads. 0 when every
    /// rank is in this process; a process of a multi-process group runs only its own rank.
    /// </summary>
    int LeadRank { get; }
    /// <summary>Runs body on every rank of this process concurrently; returns the results in world-rank order (the lead's first).</summary>
    T[] Run<T>(Func<RankRuntime, T> body);
}
