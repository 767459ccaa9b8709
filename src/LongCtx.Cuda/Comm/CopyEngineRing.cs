using System.Collections.Concurrent;
using LongCtx.Comm;
using LongCtx.Cuda.Native;
using LongCtx.Cuda.Runtime;
using LongCtx.Tensors;

namespace LongCtx.Cuda.Comm;

/// <summary>
/// Ring transfers (<see cref="ICommunicator.SendReceive"/>) between ranks that are threads of this process, done by
/// the GPUs' copy engines instead of NCCL's kernels: the receiver's communication stream waits for the sender's data
/// (an event on the sender's compute stream) and pulls it with cuMemcpyPeerAsync, or cuMemcpyDtoDAsync when both
/// ranks share a GPU. No kernel runs, so a transfer takes no SM from the attention it hides behind, and it does not
/// wait, as NCCL's paired send and receive kernels do, until both GPUs have SMs free for it at once.
///
/// The host only swaps pointers and events with the peers: each rank posts its tensors with a "ready" event, takes
/// its predecessor's post, queues the copy and posts back the event of the finished copy, which the sender's compute
/// stream waits for in <see cref="ICommRequest.Wait"/> before its buffers may be reused. Nothing waits for the GPU.
/// </summary>
internal sealed class CopyEngineRing
{
    private readonly BlockingCollection<Offer>[,] _offers;
    private readonly CancellationToken _cancel;

    public CopyEngineRing(int size, CancellationToken cancel)
    {
        _cancel = cancel;
        _offers = new BlockingCollection<Offer>[size, size];
        for (int i = 0; i < size; i++)
            for (int j = 0; j < size; j++)
                _offers[i, j] = new BlockingCollection<Offer>();
    }

    /// <summary>
    /// Lets each GPU's context read the others' memory directly over NVLink; where the hardware cannot, cuMemcpyPeerAsync
    /// still works, through the host. NCCL may have enabled it already.
    /// </summary>
    public static void EnablePeerAccess(IReadOnlyList<CudaDevice> devices)
    {
        foreach (var device in devices)
        {
            device.MakeCurrent();
            foreach (var peer in devices)
            {
                if (peer.Ordinal == device.Ordinal) continue;
                CudaDriver.Check(CudaDriver.cuDeviceCanAccessPeer(out int can, device.Handle, peer.Handle), "cuDeviceCanAccessPeer");
                if (can == 0) continue;
                int status = CudaDriver.cuCtxEnablePeerAccess(peer.Context, 0);
                if (status != CudaDriver.ErrorPeerAccessAlreadyEnabled) CudaDriver.Check(status, $"cuCtxEnablePeerAccess (GPU {device.Ordinal} to GPU {peer.Ordinal})");
            }
        }
    }

    /// <summary>Rank <paramref name="rank"/> (on <paramref name="device"/>, its context current) sends to one neighbour and receives from the other.</summary>
    public ICommRequest SendReceive(int rank, CudaDevice device, IReadOnlyList<Tensor> send, int sendTo, IReadOnlyList<Tensor> receive, int receiveFrom)
    {
        var mine = new Offer(device, send, SharedEvent.Record(device.ComputeStream, waiters: 1));
        _offers[rank, sendTo].Add(mine, _cancel);
        var incoming = _offers[receiveFrom, rank].Take(_cancel);
        if (incoming.Tensors.Count != receive.Count) throw new InvalidOperationException($"rank {rank} expected {receive.Count} tensors from rank {receiveFrom}, got {incoming.Tensors.Count}");
        // The receive buffers come from the stream-ordered pool of the compute stream: write them after what it queued.
        CudaDevice.Order(device.ComputeStream, device.CommStream);
        incoming.Ready.Wait(device.CommStream);
        for (int i = 0; i < receive.Count; i++)
        {
            var (from, to) = (incoming.Tensors[i], receive[i]);
            if (from.Bytes != to.Bytes) throw new InvalidOperationException($"rank {rank} expected {to} from rank {receiveFrom}, got {from}");
            Copy(incoming.Device, P(from), device, P(to), from.Bytes, device.CommStream);
        }
        var copied = SharedEvent.Record(device.CommStream, waiters: 2); // this rank's compute stream, and the sender's
        incoming.Copied.SetResult(copied);
        return new Step(device, copied, mine, _cancel);
    }

    /// <summary>A copy on <paramref name="stream"/> (of <paramref name="destination"/>'s device) from another rank's memory.</summary>
    public static void Copy(CudaDevice source, nint from, CudaDevice destination, nint to, long bytes, nint stream)
    {
        if (bytes == 0) return;
        if (source.Ordinal == destination.Ordinal) // ranks on one GPU share its primary context
            CudaDriver.Check(CudaDriver.cuMemcpyDtoDAsync(to, from, (nuint)bytes, stream), "cuMemcpyDtoDAsync");
        else
            CudaDriver.Check(CudaDriver.cuMemcpyPeerAsync(to, destination.Context, from, source.Context, (nuint)bytes, stream), "cuMemcpyPeerAsync");
    }

    private static nint P(Tensor t) => t is CudaTensor c ? c.Pointer : throw new ArgumentException($"{t} is not a CUDA tensor");

    /// <summary>What a sender posts: its tensors, once its compute stream has written them; the receiver answers with its copy's event.</summary>
    private sealed record Offer(CudaDevice Device, IReadOnlyList<Tensor> Tensors, SharedEvent Ready)
    {
        public TaskCompletionSource<SharedEvent> Copied { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>
    /// One ring step: the compute stream waits for the incoming block to land, and for the successor's copy of the
    /// outgoing block (the sender's buffers are freed or reused once the strategy has waited).
    /// </summary>
    private sealed class Step(CudaDevice device, SharedEvent received, Offer sent, CancellationToken cancel) : ICommRequest
    {
        private bool _done;

        public void Wait()
        {
            if (_done) return;
            _done = true;
            device.Timed("communication", () =>
            {
                received.Wait(device.ComputeStream);
                sent.Copied.Task.Wait(cancel);
                sent.Copied.Task.Result.Wait(device.ComputeStream);
            });
        }
    }

    /// <summary>
    /// An event recorded once and waited for by a known number of streams, on any device; destroyed when the last wait
    /// is queued (the driver releases it once it has completed).
    /// </summary>
    private sealed class SharedEvent
    {
        private readonly nint _event;
        private int _waiters;

        private SharedEvent(nint ev, int waiters) => (_event, _waiters) = (ev, waiters);

        public static SharedEvent Record(nint stream, int waiters)
        {
            CudaDriver.Check(CudaDriver.cuEventCreate(out var ev, CudaDriver.EventDisableTiming), "cuEventCreate");
            CudaDriver.Check(CudaDriver.cuEventRecord(ev, stream), "cuEventRecord");
            return new SharedEvent(ev, waiters);
        }

        public void Wait(nint stream)
        {
            CudaDriver.Check(CudaDriver.cuStreamWaitEvent(stream, _event, 0), "cuStreamWaitEvent");
            if (Interlocked.Decrement(ref _waiters) == 0) CudaDriver.cuEventDestroy(_event);
        }
    }
}
