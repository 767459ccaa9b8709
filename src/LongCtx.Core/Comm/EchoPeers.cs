using System.Runtime.InteropServices;
using LongCtx.Backends;
using LongCtx.Tensors;

namespace LongCtx.Comm;

/// <summary>
/// The ring as one rank sees it when it runs alone in the place of rank <paramref name="rank"/> of
/// <paramref name="size"/>: every peer answers with what this rank sends. A ring step receives a copy of the block it
/// sent, a gather holds this rank's part in every slot, an all-to-all hands each part back, and an all-reduce adds
/// nothing (the peers hold zeros in this rank's rows, as the engine's gather of hidden rows has them).
///
/// The rank then does the work of its place in an N-rank run — the same shards, block shapes, merges and cache —
/// on one device, without the communication: `longctx bench --one-rank-of N` times one GPU's share of an N-GPU
/// prefill or decode that way, and profiles it by kernel without the distortion of ranks sharing a GPU. The values
/// are not an N-rank run's (the peers' keys are this rank's own): a stand-in for timing, never for answers.
/// </summary>
public sealed class EchoPeers(int rank, int size, IBackend backend) : ICommunicator
{
    public int Rank { get; } = rank >= 0 && rank < size ? rank : throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} of {size}");
    public int Size => size;

    /// <summary>Received: a copy of what was sent (as many rows as both have, for a last rank's shorter shard).</summary>
    public ICommRequest SendReceive(IReadOnlyList<Tensor> send, int sendTo, IReadOnlyList<Tensor> receive, int receiveFrom)
    {
        if (send.Count != receive.Count) throw new ArgumentException($"ring step: {send.Count} tensors sent, {receive.Count} received");
        for (int i = 0; i < send.Count; i++) CopyRows(send[i], receive[i]);
        return Received.Instance;
    }

    public void AllGather(Tensor send, Tensor receive) => AllGatherEach([send], [receive]);

    /// <summary>Every slot a copy of this rank's part: one batch of copies (one launch for a decode step's small ones on a GPU).</summary>
    public void AllGatherEach(IReadOnlyList<Tensor> send, IReadOnlyList<Tensor> receive)
    {
        var copies = new List<(Tensor Source, Tensor Destination)>();
        for (int i = 0; i < send.Count; i++)
        {
            if (receive[i].Length != send[i].Length * size) throw new ArgumentException($"all-gather: receive {receive[i]} must hold {size} x {send[i]}");
            var slots = receive[i].View(size, checked((int)send[i].Length));
            for (int r = 0; r < size; r++) copies.Add((send[i], slots.SliceRows(r, 1)));
        }
        backend.CopyEach(CollectionsMarshal.AsSpan(copies));
    }

    public void AllToAll(IReadOnlyList<Tensor> send, IReadOnlyList<Tensor> receive)
    {
        if (send.Count != size || receive.Count != size) throw new ArgumentException($"all-to-all over {size} ranks: {send.Count} sent, {receive.Count} received");
        for (int r = 0; r < size; r++) CopyRows(send[r], receive[r]);
    }

    /// <summary>The peers add zeros.</summary>
    public void AllReduceSum(Tensor buffer) { }

    /// <summary>The root's buffer is this rank's.</summary>
    public void Broadcast(Tensor buffer, int root) { }

    public void Barrier() { }

    public void Dispose() { }

    private void CopyRows(Tensor source, Tensor destination)
    {
        int rows = Math.Min(source.Rows, destination.Rows);
        if (rows > 0) backend.Copy(source.SliceRows(0, rows), destination.SliceRows(0, rows));
    }

    /// <summary>A transfer that completed when it was issued (the copies are queued in order on the rank's stream).</summary>
    private sealed class Received : ICommRequest
    {
        public static readonly Received Instance = new();

        public void Wait() { }
    }
}
