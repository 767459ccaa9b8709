using LongCtx.Tensors;

namespace LongCtx.Comm;

/// <summary>A transfer in flight. Wait() returns once the received data may be read and the sent data reused.</summary>
public interface ICommRequest
{
    void Wait();
}

/// <summary>
/// Collective and point-to-point communication between the ranks of one context-parallel group. The
/// in-process implementation runs ranks as threads over CPU tensors; the NCCL one runs ranks as GPUs.
/// Every rank of the group must call collectives in the same order.
/// </summary>
public interface ICommunicator : IDisposable
{
    int Rank { get; }
    int Size { get; }

    /// <summary>
    /// One grouped ring step: sends <paramref name="send"/> to rank <paramref name="sendTo"/> and receives
    /// into <paramref name="receive"/> from rank <paramref name="receiveFrom"/>. Returns at once; the caller
    /// computes, then waits. Tensors must have matching shapes on both sides.
    /// </summary>
    ICommRequest SendReceive(IReadOnlyList<Tensor> send, int sendTo, IReadOnlyList<Tensor> receive, int receiveFrom);

    /// <summary>receive = concatenation over ranks (in rank order) of every rank's send, along rows.</summary>
    void AllGather(Tensor send, Tensor receive);

    /// <summary>
    /// <see cref="AllGather"/> of each send[i] into receive[i], as one operation where the transport can: NCCL runs a
    /// group of collectives as one launch, which halves the latency of a decode step's two gathers a layer.
    /// </summary>
    void AllGatherEach(IReadOnlyList<Tensor> send, IReadOnlyList<Tensor> receive)
    {
        for (int i = 0; i < send.Count; i++) AllGather(send[i], receive[i]);
    }
    /// <summary>send[j] goes to rank j, receive[j] comes from rank j (shapes agreed beforehand).</summary>
    void AllToAll(IReadOnlyList<Tensor> send, IReadOnlyList<Tensor> receive);
    /// <summary>buffer = elementwise sum of every rank's buffer.</summary>
    void AllReduceSum(Tensor buffer);
    /// <summary>Every rank's buffer = the root's buffer.</summary>
    void Broadcast(Tensor buffer, int root);
    void Barrier();
}
