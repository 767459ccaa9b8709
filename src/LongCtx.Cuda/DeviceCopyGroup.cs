using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using LongCtx.Cuda.Native;
using LongCtx.Parallel;
using LongCtx.Tensors;

namespace LongCtx.Cuda;

/// <summary>
/// The communicator of ranks that share GPUs (more ranks than GPUs, which NCCL refuses): ranks are threads
/// of this process and every transfer is a copy the receiving rank issues on its own compute stream —
/// cuMemcpyDtoD on the same GPU, cuMemcpyPeer between GPUs. Built for exactness, not speed: every
/// exchange synchronises the streams involved on the host, so nothing overlaps. Collectives meet at a
/// barrier (publish, pull, synchronise, meet again so no source is reused before every rank has read it);
/// ring steps go through per-pair mailboxes and the sender's request completes when its message was copied.
/// If one rank fails, <see cref="Cancel"/> releases the others from their waits.
/// </summary>
internal sealed class DeviceCopyGroup
{
    private readonly Barrier _barrier;
    private readonly object?[] _slots;
    private readonly BlockingCollection<Message>[,] _mailbox;
    private readonly CancellationTokenSource _cancel;

    public DeviceCopyGroup(int size) : this(size, new CancellationTokenSource()) { }

    private DeviceCopyGroup(int size, CancellationTokenSource cancel)
    {
        Size = size;
        _cancel = cancel;
        _barrier = new Barrier(size);
        _slots = new object?[size];
        _mailbox = new BlockingCollection<Message>[size, size];
        for (int i = 0; i < size; i++)
            for (int j = 0; j < size; j++)
                _mailbox[i, j] = new BlockingCollection<Message>();
    }

    public int Size { get; }

    public ICommunicator Communicator(int rank, CudaDevice device) => new Member(this, rank, device);

    public void Cancel() => _cancel.Cancel();

    /// <summary>A ring or tensor-parallel group of <paramref name="size"/> of this group's ranks, cancelled with it.</summary>
    public DeviceCopyGroup Subgroup(int size) => new(size, _cancel);

    /// <summary>What a rank publishes: its tensors and the device they live on.</summary>
    private sealed record Shared(CudaDevice Device, IReadOnlyList<Tensor> Tensors);

    /// <summary>A ring message: set once the receiver has copied it, so the sender may reuse its tensors.</summary>
    private sealed record Message(Shared Payload, ManualResetEventSlim Received);

    private sealed class Member(DeviceCopyGroup group, int rank, CudaDevice device) : ICommunicator
    {
        private CancellationToken Token => group._cancel.Token;
        public int Rank => rank;
        public int Size => group.Size;

        public ICommRequest SendReceive(IReadOnlyList<Tensor> send, int sendTo, IReadOnlyList<Tensor> receive, int receiveFrom)
        {
            device.Synchronize(); // the data to send is written
            var outgoing = new Message(new Shared(device, send), new ManualResetEventSlim());
            group._mailbox[rank, sendTo].Add(outgoing, Token);
            return new RingStep(this, outgoing, receiveFrom, receive);
        }

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
            group._barrier.SignalAndWait(Token);
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

        private void Exchange(object mine, Action<object?[]> read)
        {
            group._slots[rank] = mine;
            group._barrier.SignalAndWait(Token);
            read(group._slots);
            group._barrier.SignalAndWait(Token);
        }

        /// <summary>Copies on this rank's compute stream; the source is another rank's, possibly on another GPU.</summary>
        public void CopyFrom(CudaDevice source, nint from, nint to, long bytes)
        {
            if (bytes == 0) return;
            if (source.Ordinal == device.Ordinal) // ranks on one GPU share its primary context
                CudaDriver.Check(CudaDriver.cuMemcpyDtoDAsync(to, from, (nuint)bytes, device.ComputeStream), "cuMemcpyDtoDAsync");
            else
                CudaDriver.Check(CudaDriver.cuMemcpyPeerAsync(to, device.Context, from, source.Context, (nuint)bytes, device.ComputeStream), "cuMemcpyPeerAsync");
        }

        public void TakeMessage(int from, IReadOnlyList<Tensor> receive)
        {
            var message = group._mailbox[from, rank].Take(Token);
            var tensors = message.Payload.Tensors;
            if (tensors.Count != receive.Count) throw new InvalidOperationException($"rank {rank} expected {receive.Count} tensors from rank {from}, got {tensors.Count}");
            for (int i = 0; i < tensors.Count; i++)
            {
                if (tensors[i].Bytes != receive[i].Bytes) throw new InvalidOperationException($"rank {rank} expected {receive[i]} from rank {from}, got {tensors[i]}");
                CopyFrom(message.Payload.Device, P(tensors[i]), P(receive[i]), tensors[i].Bytes);
            }
            device.Synchronize();
            message.Received.Set();
        }

        public void AwaitDelivery(Message sent)
        {
            sent.Received.Wait(Token);
            sent.Received.Dispose();
        }

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

    /// <summary>One ring step: Wait receives the incoming message, then waits until the outgoing one was received.</summary>
    private sealed class RingStep(Member member, Message outgoing, int from, IReadOnlyList<Tensor> receive) : ICommRequest
    {
        private bool _done;

        public void Wait()
        {
            if (_done) return;
            member.TakeMessage(from, receive);
            member.AwaitDelivery(outgoing);
            _done = true;
        }
    }
}
