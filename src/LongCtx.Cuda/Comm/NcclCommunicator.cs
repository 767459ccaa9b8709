using LongCtx.Comm;
using LongCtx.Cuda.Native;
using LongCtx.Cuda.Runtime;
using LongCtx.Engine;
using LongCtx.Tensors;

namespace LongCtx.Cuda.Comm;

/// <summary>
/// The communicator of ranks that are GPUs, over NCCL. Ring transfers (<see cref="SendReceive"/>) run on
/// the device's communication stream: it first waits for the compute stream (the data to send is
/// ready, and any block the pool recycled is no longer read), then the compute stream waits for the
/// transfer only in <see cref="ICommRequest.Wait"/> — so the attention issued in between overlaps it. With a
/// <see cref="CopyEngineRing"/> (ranks of one process, <see cref="CudaSettings.CopyEngineRing"/>) the ring
/// transfers are the copy engines' instead, on the same stream; the collectives stay NCCL's.
/// Collectives run on the compute stream, in order with the kernels around them. Nothing here blocks
/// the host except <see cref="Barrier"/>.
/// </summary>
internal sealed class NcclCommunicator(nint comm, int rank, int size, CudaDevice device, CopyEngineRing? copies = null) : ICommunicator
{
    public int Rank => rank;
    public int Size => size;

    /// <summary>
    /// World rank w's context-parallel ring and tensor-parallel group (<see cref="RankGrid"/>) from its world
    /// communicator: the world itself when there is no tensor parallelism, else two ncclCommSplit calls that
    /// every rank makes in the same order (ring: color t, ranked by c; group: color c, ranked by t), after
    /// which the world communicator is no longer needed. <paramref name="copies"/>: the ring's copy-engine transfers,
    /// if it uses them.
    /// </summary>
    public static (ICommunicator Ring, ICommunicator? Slice) ForGrid(nint world, RankGrid grid, int worldRank, CudaDevice device, CopyEngineRing? copies = null)
    {
        if (grid.TensorRanks == 1) return (new NcclCommunicator(world, worldRank, grid.World, device, copies), null);
        int c = grid.ContextOf(worldRank), t = grid.TensorOf(worldRank);
        Nccl.Check(Nccl.ncclCommSplit(world, t, c, out var ring, 0), $"ncclCommSplit (ring of tensor rank {t})");
        Nccl.Check(Nccl.ncclCommSplit(world, c, t, out var slice, 0), $"ncclCommSplit (tensor group of context rank {c})");
        Nccl.Check(Nccl.ncclCommDestroy(world), "ncclCommDestroy");
        return (new NcclCommunicator(ring, c, grid.ContextRanks, device, copies), new NcclCommunicator(slice, t, grid.TensorRanks, device));
    }

    public ICommRequest SendReceive(IReadOnlyList<Tensor> send, int sendTo, IReadOnlyList<Tensor> receive, int receiveFrom)
    {
        if (copies is not null) return copies.SendReceive(rank, device, send, sendTo, receive, receiveFrom);
        CudaDevice.Order(device.ComputeStream, device.CommStream);
        Nccl.Check(Nccl.ncclGroupStart(), "ncclGroupStart");
        foreach (var t in send) Nccl.Check(Nccl.ncclSend(P(t), (nuint)t.Bytes, Nccl.Uint8, sendTo, comm, device.CommStream), "ncclSend");
        foreach (var t in receive) Nccl.Check(Nccl.ncclRecv(P(t), (nuint)t.Bytes, Nccl.Uint8, receiveFrom, comm, device.CommStream), "ncclRecv");
        Nccl.Check(Nccl.ncclGroupEnd(), "ncclGroupEnd");
        return new Transfer(device);
    }

    public void AllGather(Tensor send, Tensor receive) => AllGatherEach([send], [receive]);

    /// <summary>The gathers in one NCCL group: one launch.</summary>
    public void AllGatherEach(IReadOnlyList<Tensor> send, IReadOnlyList<Tensor> receive)
    {
        for (int i = 0; i < send.Count; i++)
            if (receive[i].Bytes != send[i].Bytes * size) throw new ArgumentException($"all-gather: receive {receive[i]} must hold {size} x {send[i]}");
        if (send.All(t => t.Bytes == 0)) return;
        device.Timed("communication", () =>
        {
            Nccl.Check(Nccl.ncclGroupStart(), "ncclGroupStart");
            for (int i = 0; i < send.Count; i++)
                if (send[i].Bytes > 0)
                    Nccl.Check(Nccl.ncclAllGather(P(send[i]), P(receive[i]), (nuint)send[i].Bytes, Nccl.Uint8, comm, device.ComputeStream), "ncclAllGather");
            Nccl.Check(Nccl.ncclGroupEnd(), "ncclGroupEnd");
        });
    }

    public void AllToAll(IReadOnlyList<Tensor> send, IReadOnlyList<Tensor> receive) =>
        device.Timed("communication", () => AllToAllNow(send, receive));

    private void AllToAllNow(IReadOnlyList<Tensor> send, IReadOnlyList<Tensor> receive)
    {
        Nccl.Check(Nccl.ncclGroupStart(), "ncclGroupStart");
        for (int j = 0; j < size; j++)
        {
            if (j == rank)
            {
                if (send[j].Bytes > 0)
                    CudaDriver.Check(CudaDriver.cuMemcpyDtoDAsync(P(receive[j]), P(send[j]), (nuint)send[j].Bytes, device.ComputeStream), "cuMemcpyDtoDAsync");
                continue;
            }
            if (send[j].Bytes > 0) Nccl.Check(Nccl.ncclSend(P(send[j]), (nuint)send[j].Bytes, Nccl.Uint8, j, comm, device.ComputeStream), "ncclSend");
            if (receive[j].Bytes > 0) Nccl.Check(Nccl.ncclRecv(P(receive[j]), (nuint)receive[j].Bytes, Nccl.Uint8, j, comm, device.ComputeStream), "ncclRecv");
        }
        Nccl.Check(Nccl.ncclGroupEnd(), "ncclGroupEnd");
    }

    public void AllReduceSum(Tensor buffer)
    {
        if (buffer.Length == 0) return;
        int type = buffer.DType switch
        {
            DType.BF16 => Nccl.Bfloat16,
            DType.F32 => Nccl.Float32,
            _ => throw new ArgumentException($"all-reduce of {buffer}"),
        };
        device.Timed("communication", () =>
            Nccl.Check(Nccl.ncclAllReduce(P(buffer), P(buffer), (nuint)buffer.Length, type, Nccl.Sum, comm, device.ComputeStream), "ncclAllReduce"));
    }

    public void Broadcast(Tensor buffer, int root)
    {
        if (buffer.Bytes > 0)
            Nccl.Check(Nccl.ncclBroadcast(P(buffer), P(buffer), (nuint)buffer.Bytes, Nccl.Uint8, root, comm, device.ComputeStream), "ncclBroadcast");
    }

    public void Barrier()
    {
        var backendless = CudaTensor.Allocate(device.Pool, DType.F32, [1]);
        AllReduceSum(backendless);
        device.Synchronize();
        backendless.Dispose();
    }

    public void Dispose() => Nccl.ncclCommDestroy(comm);

    private static nint P(Tensor t) => t is CudaTensor c ? c.Pointer : throw new ArgumentException($"{t} is not a CUDA tensor");

    private sealed class Transfer(CudaDevice device) : ICommRequest
    {
        private readonly nint _done = Record(device.CommStream);

        private static nint Record(nint stream)
        {
            CudaDriver.Check(CudaDriver.cuEventCreate(out var ev, CudaDriver.EventDisableTiming), "cuEventCreate");
            CudaDriver.Check(CudaDriver.cuEventRecord(ev, stream), "cuEventRecord");
            return ev;
        }

        public void Wait()
        {
            device.Timed("communication", () => CudaDriver.Check(CudaDriver.cuStreamWaitEvent(device.ComputeStream, _done, 0), "cuStreamWaitEvent"));
            CudaDriver.cuEventDestroy(_done);
        }
    }
}
