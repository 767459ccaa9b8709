using LongCtx.Comm;
using LongCtx.Tensors;

namespace LongCtx.Tests.ContextParallel;

/// <summary>A communicator that counts the rows each ring step sends (every tensor of it: K and V count apart), then passes the call on.</summary>
internal sealed class CountingCommunicator(ICommunicator inner) : ICommunicator
{
    /// <summary>Rows sent by <see cref="SendReceive"/> so far.</summary>
    public long RowsSent { get; private set; }

    /// <summary>Ring steps issued so far.</summary>
    public int Steps { get; private set; }

    public int Rank => inner.Rank;
    public int Size => inner.Size;

    public ICommRequest SendReceive(IReadOnlyList<Tensor> send, int sendTo, IReadOnlyList<Tensor> receive, int receiveFrom)
    {
        RowsSent += send.Sum(t => (long)t.Rows);
        Steps++;
        return inner.SendReceive(send, sendTo, receive, receiveFrom);
    }

    public void AllGather(Tensor send, Tensor receive) => inner.AllGather(send, receive);
    public void AllGatherEach(IReadOnlyList<Tensor> send, IReadOnlyList<Tensor> receive) => inner.AllGatherEach(send, receive);
    public void AllToAll(IReadOnlyList<Tensor> send, IReadOnlyList<Tensor> receive) => inner.AllToAll(send, receive);
    public void AllReduceSum(Tensor buffer) => inner.AllReduceSum(buffer);
    public void Broadcast(Tensor buffer, int root) => inner.Broadcast(buffer, root);
    public void Barrier() => inner.Barrier();
    public void Dispose() => inner.Dispose();
}
