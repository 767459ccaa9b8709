using LongCtx.Backends;
using LongCtx.Comm;
using LongCtx.ContextParallel;
using LongCtx.Model;

namespace LongCtx.Engine;

/// <summary>
/// What one rank owns: its device backend, its end of the context-parallel ring, its model copy (with the
/// tensor-parallel communicator when it holds a slice of each layer) and the KV it holds per sequence.
/// World rank w = context rank · T + tensor rank, so the T ranks of one tensor-parallel group are neighbours
/// (one node), and every tensor rank runs its own ring with the ranks of the same tensor rank elsewhere.
/// </summary>
public sealed class RankRuntime(int worldRank, IBackend backend, ICommunicator comm, ModelReplica model) : IDisposable
{
    public int WorldRank => worldRank;
    /// <summary>This rank's place in its context-parallel ring (which shard of the context it owns).</summary>
    public int Rank => comm.Rank;
    public int TensorRank => model.Slice.Rank;
    public IBackend Backend => backend;
    /// <summary>The context-parallel ring: ranks holding the same heads, each with its shard of the context.</summary>
    public ICommunicator Comm => comm;
    /// <summary>The tensor-parallel group: ranks holding the same context shard, each with its heads; null without tensor parallelism.</summary>
    public ICommunicator? TensorComm => model.TensorComm;
    public ModelReplica Model => model;
    public Dictionary<int, SequenceKv> Caches { get; } = [];

    public SequenceKv CacheOf(int sequenceId)
    {
        if (!Caches.TryGetValue(sequenceId, out var kv))
            Caches[sequenceId] = kv = new SequenceKv(backend, model.Config.NumLayers, model.KvHeads, model.Config.HeadDim,
                Enumerable.Range(0, model.Config.NumLayers).Select(model.Config.WindowOf).ToArray(), model.KvCache);
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
