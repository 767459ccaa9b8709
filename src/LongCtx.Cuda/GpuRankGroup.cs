using System.Runtime.ExceptionServices;
using LongCtx.Cuda.Native;
using LongCtx.Engine;
using LongCtx.Models;

namespace LongCtx.Cuda;

/// <summary>
/// N local GPUs as the ranks of one context-parallel group: one thread per GPU (each with its device's
/// context current), one NCCL communicator per GPU created together with ncclCommInitAll, and a model
/// copy on every GPU. The engine's orchestration runs on it unchanged.
/// </summary>
public sealed class GpuRankGroup : IRankGroup
{
    private readonly RankRuntime[] _ranks;
    private readonly CudaBackend[] _backends;

    public unsafe GpuRankGroup(ModelConfig config, ModelWeights weights, int gpus, AttentionImplementation attention = AttentionImplementation.Auto)
    {
        int available = CudaBackend.DeviceCount();
        if (available == 0) throw new LongCtxException("--device cuda: no CUDA GPU found on this machine; use --device cpu");
        if (gpus < 1 || gpus > available) throw new LongCtxException($"--gpus {gpus}: this machine has {available} GPU(s)");
        _backends = new CudaBackend[gpus];
        RunOn(gpus, r => _backends[r] = new CudaBackend(r, attention));
        var comms = new nint[gpus];
        var devices = Enumerable.Range(0, gpus).ToArray();
        fixed (nint* c = comms)
        fixed (int* d = devices)
            Nccl.Check(Nccl.ncclCommInitAll(c, gpus, d), "ncclCommInitAll");
        _ranks = new RankRuntime[gpus];
        RunOn(gpus, r =>
        {
            var backend = _backends[r];
            var replica = new ModelReplica(config, weights, backend);
            backend.Synchronize();
            _ranks[r] = new RankRuntime(r, backend, new NcclCommunicator(comms[r], r, gpus, backend.Device), replica);
            return 0;
        });
        Device = $"cuda x{gpus} ({_backends[0].Device.Name})";
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
            catch (Exception e) { errors[r] = e; }
        }, maxStackSize: 4 << 20) { IsBackground = true, Name = $"gpu {r}" }).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        if (errors.FirstOrDefault(e => e is not null) is { } first) ExceptionDispatchInfo.Capture(first).Throw();
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
