using LongCtx.Backends;
using LongCtx.Parallel;

namespace LongCtx.Engine;

/// <summary>What one rank owns: its device backend, its end of the communicator, its model copy and the KV it holds per sequence.</summary>
public sealed class RankRuntime(int rank, IBackend backend, ICommunicator comm, ModelReplica model) : IDisposable
{
    public int Rank => rank;
    public IBackend Backend => backend;
    public ICommunicator Comm => comm;
    public ModelReplica Model => model;
    public Dictionary<int, SequenceKv> Caches { get; } = [];

    public SequenceKv CacheOf(int sequenceId)
    {
        if (!Caches.TryGetValue(sequenceId, out var kv))
            Caches[sequenceId] = kv = new SequenceKv(backend, model.Config.NumLayers, model.Config.NumKvHeads, model.Config.HeadDim);
        return kv;
    }

    public void Release(int sequenceId)
    {
        if (Caches.Remove(sequenceId, out var kv)) kv.Dispose();
    }

    public void Dispose()
    {
        foreach (var kv in Caches.Values) kv.Dispose();
        Caches.Clear();
        model.Dispose();
    }
}

/// <summary>
/// The ranks of one context-parallel group and a way to run the same work on all of them at once (SPMD):
/// threads over CPU backends in one process, or GPUs.
/// </summary>
public interface IRankGroup : IDisposable
{
    int Size { get; }
    /// <summary>The backend's name and devices, for logs and --json output.</summary>
    string Device { get; }
    /// <summary>
    /// The first rank this process runs: it computes the logits the host reads. 0 when every rank is in this
    /// process; a process of a multi-process group runs only its own ranks.
    /// </summary>
    int LeadRank { get; }
    /// <summary>Runs body on every rank of this process concurrently; returns the results in rank order (the lead's first).</summary>
    T[] Run<T>(Func<RankRuntime, T> body);
}
