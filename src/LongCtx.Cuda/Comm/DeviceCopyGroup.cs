using System.Runtime.InteropServices;
using LongCtx.Comm;
using LongCtx.Cuda.Native;
using LongCtx.Cuda.Runtime;
using LongCtx.Tensors;

namespace LongCtx.Cuda.Comm;

/// <summary>
/// The communicator of ranks that share GPUs (more ranks than GPUs, which NCCL refuses): ranks are threads
/// of this process and every transfer is a copy the receiving rank issues — cuMemcpyDtoD on the same GPU,
/// cuMemcpyPeer between GPUs. Ring steps are <see cref="CopyEngineRing"/>'s, queued on the communication
/// stream like NCCL's; the collectives are built for exactness, not speed: they meet in a <see cref="ThreadGroup"/>
/// (publish, pull on the compute stream, synchronise, meet again so no source is reused before every rank has read it).
/// If one rank fails, <see cref="Cancel"/> releases the others from their waits.
/// </summary>
internal sealed class DeviceCopyGroup
{
    private readonly ThreadGroup _threads;
    private readonly CopyEngineRing _ring;

    public DeviceCopyGroup(int size) : this(new ThreadGroup(size)) { }

    private DeviceCopyGroup(ThreadGroup threads)
    {
        _threads = threads;
        _ring = new CopyEngineRing(threads.Size, threads.Token);
    }

    public int Size => _threads.Size;

    public ICommunicator Communicator(int rank, CudaDevice device) => new Member(this, rank, device);

    public void Cancel() => _threads.Cancel();

    /// <summary>A ring or tensor-parallel group of <paramref name="size"/> of this group's ranks, cancelled with it.</summary>
    public DeviceCopyGroup Subgroup(int size) => new(_threads.Subgroup(size));

    /// <summary>What a rank publishes: its tensors and the device they live on.</summary>
    private sealed record Shared(CudaDevice Device, IReadOnlyList<Tensor> Tensors);

    private sealed class Member(DeviceCopyGroup group, int rank, CudaDevice device) : ICommunicator
    {
        public int Rank => rank;
        public int Size => group.Size;

        public ICommRequest SendReceive(IReadOnlyList<Tensor> send, int sendTo, IReadOnlyList<Tensor> receive, int receiveFrom) =>
            group._ring.SendReceive(rank, device, send, sendTo, receive, receiveFrom);

        public void AllGather(Tensor send, Tensor receive)
        {
            if (receive.Bytes != send.Bytes * Size) throw new ArgumentException($"all-gather: receive {receive} must hold {Size} x {send}");
            Collective([send], slots =>
            {
                for (int r = 0; r < Size; r++) CopyFrom(slots[r].Device, P(slots[r].Tensors[0]), P(receive) + (nint)(r * send.Bytes), send.Bytes);
            });
        }

        public void AllToAll(IReadOnlyList<Tensor> send, IReadOnlyList<Tensor> receive) =>
            Collective(send, slots =>
            {
                for (int r = 0; r < Size; r++)
                {
                    var source = slots[r].Tensors[rank];
                    if (source.Bytes != receive[r].Bytes) throw new ArgumentException($"all-to-all: rank {r} sends {source} to rank {rank}, which expects {receive[r]}");
                    CopyFrom(slots[r].Device, P(source), P(receive[r]), source.Bytes);
                }
            });

        /// <summary>Summed on the host in rank order, in float, so every rank gets the same bits.</summary>
        public void AllReduceSum(Tensor buffer)
        {
            if (buffer.Length == 0) return;
            var mine = ReadFloats(buffer);
            var sum = new float[mine.Length];
            Exchange(mine, slots =>
            {
                for (int r = 0; r < Size; r++)
                {
                    var part = (float[])slots[r]!;
                    for (int i = 0; i < sum.Length; i++) sum[i] += part[i];
                }
            });
            WriteFloats(sum, buffer);
        }

        public void Broadcast(Tensor buffer, int root) =>
            Collective([buffer], slots =>
            {
                if (rank != root) CopyFrom(slots[root].Device, P(slots[root].Tensors[0]), P(buffer), buffer.Bytes);
            });

        public void Barrier()
        {
            device.Synchronize();
            group._threads.Barrier();
        }

        public void Dispose() { }

        /// <summary>Publishes this rank's tensors once written, lets every rank pull from all of them, and returns when every pull is done.</summary>
        private void Collective(IReadOnlyList<Tensor> mine, Action<Shared[]> pull)
        {
            device.Synchronize();
            Exchange(new Shared(device, mine), slots =>
            {
                pull(slots.Select(s => (Shared)s!).ToArray());
                device.Synchronize();
            });
        }

        private void Exchange(object mine, Action<object?[]> read) => group._threads.Exchange(rank, mine, read);

        /// <summary>Copies on this rank's compute stream; the source is another rank's, possibly on another GPU.</summary>
        private void CopyFrom(CudaDevice source, nint from, nint to, long bytes) =>
            CopyEngineRing.Copy(source, from, device, to, bytes, device.ComputeStream);

        private unsafe float[] ReadFloats(Tensor t)
        {
            var bytes = new byte[t.Bytes];
            fixed (byte* b = bytes) CudaDriver.Check(CudaDriver.cuMemcpyDtoHAsync(b, P(t), (nuint)t.Bytes, device.ComputeStream), "cuMemcpyDtoHAsync");
            device.Synchronize();
            return t.DType switch
            {
                DType.F32 => MemoryMarshal.Cast<byte, float>(bytes).ToArray(),
                DType.BF16 => ToFloat(MemoryMarshal.Cast<byte, ushort>(bytes)),
                _ => throw new ArgumentException($"all-reduce of {t}"),
            };
        }

        private unsafe void WriteFloats(float[] values, Tensor t)
        {
            byte[] bytes;
            if (t.DType == DType.F32) bytes = MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
            else
            {
                var bf = new ushort[values.Length];
                BFloat16.FromFloat(values, bf);
                bytes = MemoryMarshal.AsBytes(bf.AsSpan()).ToArray();
            }
            fixed (byte* b = bytes) CudaDriver.Check(CudaDriver.cuMemcpyHtoDAsync(P(t), b, (nuint)bytes.Length, device.ComputeStream), "cuMemcpyHtoDAsync");
            device.Synchronize(); // the host buffer must outlive the copy
        }

        private static float[] ToFloat(ReadOnlySpan<ushort> bf)
        {
            var f = new float[bf.Length];
            BFloat16.ToFloat(bf, f);
            return f;
        }

        private static nint P(Tensor t) => t is CudaTensor c ? c.Pointer : throw new ArgumentException($"{t} is not a CUDA tensor");
    }
}
