using System.Runtime.ExceptionServices;
using LongCtx.Cuda.Native;
using LongCtx.Engine;
using LongCtx.Models;

namespace LongCtx.Cuda;

/// <summary>
/// Local GPUs as the ranks of one context-parallel group: one thread per rank (with its GPU's context
/// current) and a model copy per rank. One rank per GPU talks through NCCL (one communicator per GPU,
/// created together with ncclCommInitAll). More ranks than GPUs — to study 4 or 8 ranks on a smaller
/// machine — share the GPUs round-robin (rank r on GPU r mod G, each with its own streams and pool) and
/// talk through <see cref="DeviceCopyGroup"/>, since NCCL refuses two ranks on one GPU: exact, not fast.
/// The engine's orchestration runs on either unchanged.
/// </summary>
public sealed class GpuRankGroup : IRankGroup
{
    private readonly RankRuntime[] _ranks;
    private readonly CudaBackend[] _backends;
    private readonly DeviceCopyGroup? _shared;

    /// <param name="ranks">ranks to run (default: one per GPU); at least <paramref name="gpus"/>.</param>
    public unsafe GpuRankGroup(ModelConfig config, ModelWeights weights, int gpus, int? ranks = null, AttentionImplementation attention = AttentionImplementation.Auto)
    {
        int available = CudaBackend.DeviceCount();
        if (available == 0) throw new LongCtxException("--device cuda: no CUDA GPU found on this machine; use --device cpu");
        if (gpus < 1 || gpus > available) throw new LongCtxException($"--gpus {gpus}: this machine has {available} GPU(s)");
        int n = ranks ?? gpus;
        if (n < gpus) throw new LongCtxException($"--ranks {n} is fewer than --gpus {gpus}: every GPU runs at least one rank; lower --gpus");
        if (n > 64) throw new LongCtxException($"--ranks {n} is out of range: use at most 64");
        _backends = new CudaBackend[n];
        RunOn(n, r => _backends[r] = new CudaBackend(r % gpus, attention));
        var comms = new nint[gpus];
        if (n == gpus)
        {
            var devices = Enumerable.Range(0, gpus).ToArray();
            fixed (nint* c = comms)
            fixed (int* d = devices)
                Nccl.Check(Nccl.ncclCommInitAll(c, gpus, d), "ncclCommInitAll");
        }
        else _shared = new DeviceCopyGroup(n);
        _ranks = new RankRuntime[n];
        RunOn(n, r =>
        {
            var backend = _backends[r];
            var replica = new ModelReplica(config, weights, backend);
            backend.Synchronize();
            var comm = _shared?.Communicator(r, backend.Device) ?? new NcclCommunicator(comms[r], r, n, backend.Device);
            _ranks[r] = new RankRuntime(r, backend, comm, replica);
            return 0;
        });
        Device = _shared is null
            ? $"cuda x{gpus} ({_backends[0].Device.Name})"
            : $"cuda x{gpus} ({_backends[0].Device.Name}) shared by {n} ranks (device copies)";
    }

    public int Size => _ranks.Length;
    public int LeadRank => 0;
    public string Device { get; }
    public IReadOnlyList<CudaBackend> Backends => _backends;

    /// <summary>Rank 0's account of which attention implementation ran (every rank runs the same calls).</summary>
    public string AttentionReport() => _backends[0].AttentionReport();

    public T[] Run<T>(Func<RankRuntime, T> body) => RunOn(Size, r => body(_ranks[r]));

    private T[] RunOn<T>(int count, Func<int, T> body)
    {
        var results = new T[count];
        var errors = new Exception?[count];
        var threads = Enumerable.Range(0, count).Select(r => new Thread(() =>
        {
            try
            {
                _backends[r]?.MakeCurrent();
                results[r] = body(r);
            }
            catch (Exception e)
            {
                errors[r] = e;
                _shared?.Cancel(); // the other ranks may be waiting for this one
            }
        }, maxStackSize: 4 << 20) { IsBackground = true, Name = $"rank {r}" }).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        var first = errors.FirstOrDefault(e => e is not null and not OperationCanceledException) ?? errors.FirstOrDefault(e => e is not null);
        if (first is not null) ExceptionDispatchInfo.Capture(first).Throw();
        return results;
    }

    public void Dispose()
    {
        if (_ranks is null) return;
        RunOn(Size, r =>
        {
            _ranks[r].Dispose();
            _ranks[r].Comm.Dispose();
            _backends[r].Dispose();
            return 0;
        });
    }
}
