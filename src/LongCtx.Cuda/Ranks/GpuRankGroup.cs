using System.Runtime.ExceptionServices;
using LongCtx.Cuda.Comm;
using LongCtx.Cuda.Native;
using LongCtx.Cuda.Ops;
using LongCtx.Engine;
using LongCtx.Model;

namespace LongCtx.Cuda.Ranks;

/// <summary>
/// Local GPUs as the ranks of one context-parallel group, optionally with tensor parallelism (each context
/// rank's layers split over TensorRanks GPUs, <see cref="RankGrid"/>): one thread per rank (with its GPU's
/// context current) and a model copy per rank. One rank per GPU talks through NCCL: one communicator per GPU
/// created together with ncclCommInitAll, split into the rings and tensor-parallel groups when there are
/// both. More ranks than GPUs — to study 4 or 8 ranks on a smaller machine — share the GPUs round-robin (rank
/// r on GPU r mod G, each with its own streams and pool) and talk through <see cref="DeviceCopyGroup"/>, since
/// NCCL refuses two ranks on one GPU: exact, not fast. The engine's orchestration runs on either unchanged.
/// </summary>
public sealed class GpuRankGroup : IRankGroup
{
    private readonly RankRuntime[] _ranks;
    private readonly CudaBackend[] _backends;
    private readonly DeviceCopyGroup? _shared;
    /// <summary>Releases ranks waiting in a copy-engine ring step when another rank fails.</summary>
    private readonly CancellationTokenSource _copyRingCancel = new();
    private readonly RankGrid _grid;
    private RankThreads? _threads;
    private bool _disposed;

    /// <param name="ranks">context-parallel ranks (default: the GPUs divided by <paramref name="tensorRanks"/>); ranks × tensorRanks at least <paramref name="gpus"/>.</param>
    /// <param name="tensorRanks">GPUs each context rank's layers are split over.</param>
    /// <param name="settings">the GPUs' settings (null: <see cref="CudaSettings.FromEnvironment"/>); with <see cref="CudaSettings.CopyEngineRing"/>,
    /// ranks with a GPU each pass ring blocks by copy engine (<see cref="CopyEngineRing"/>), not NCCL.</param>
    public unsafe GpuRankGroup(ModelConfig config, ModelWeights weights, int gpus, int? ranks = null, CudaSettings? settings = null, int tensorRanks = 1)
    {
        settings ??= CudaSettings.FromEnvironment();
        int available = CudaBackend.DeviceCount();
        if (available == 0) throw new SettingException(Setting.Device, ": no CUDA GPU found on this machine; use cpu", "cuda");
        if (gpus < 1 || gpus > available) throw new SettingException(Setting.Gpus, $": this machine has {available} GPU(s)", gpus);
        _grid = RankGrid.Of(config, ranks ?? 1, tensorRanks); // a split the heads refuse fails before any GPU work
        if (ranks is null)
        {
            // One context rank per group of tensorRanks GPUs.
            if (gpus % tensorRanks != 0) throw new SettingException(Setting.TensorParallel, $"must divide the {gpus} GPUs: each context rank takes {tensorRanks} GPU(s)", tensorRanks);
            _grid = _grid with { ContextRanks = gpus / tensorRanks };
        }
        int n = _grid.World;
        if (n < gpus) throw new SettingException(Setting.Ranks, $"x {tensorRanks} tensor-parallel ranks is fewer than the {gpus} GPUs: every GPU runs at least one rank; use fewer GPUs", _grid.ContextRanks);
        if (n > 64) throw new SettingException(Setting.Ranks, $"x {tensorRanks} tensor-parallel ranks is out of range: use at most 64 ranks in all", _grid.ContextRanks);
        _backends = new CudaBackend[n];
        RunOn(n, r => _backends[r] = new CudaBackend(r % gpus, settings));
        var comms = new nint[gpus];
        CopyEngineRing[]? copyRings = null;
        if (n == gpus)
        {
            var devices = Enumerable.Range(0, gpus).ToArray();
            fixed (nint* c = comms)
            fixed (int* d = devices)
                Nccl.Check(Nccl.ncclCommInitAll(c, gpus, d), "ncclCommInitAll");
            if (settings.CopyEngineRing)
            {
                CopyEngineRing.EnablePeerAccess(_backends.Select(b => b.Device).ToArray());
                copyRings = Enumerable.Range(0, tensorRanks).Select(_ => new CopyEngineRing(_grid.ContextRanks, _copyRingCancel.Token)).ToArray();
            }
        }
        else _shared = new DeviceCopyGroup(n);
        var rings = Enumerable.Range(0, tensorRanks).Select(_ => tensorRanks == 1 ? _shared : _shared?.Subgroup(_grid.ContextRanks)).ToArray();
        var slices = Enumerable.Range(0, _grid.ContextRanks).Select(_ => tensorRanks == 1 ? null : _shared?.Subgroup(tensorRanks)).ToArray();
        _ranks = new RankRuntime[n];
        RunOn(n, r =>
        {
            var backend = _backends[r];
            int c = _grid.ContextOf(r), t = _grid.TensorOf(r);
            var (ring, slice) = _shared is null
                ? NcclCommunicator.ForGrid(comms[r], _grid, r, backend.Device, copyRings?[t])
                : (rings[t]!.Communicator(c, backend.Device), slices[c]?.Communicator(t, backend.Device));
            var replica = new ModelReplica(config, weights, backend, slice);
            backend.Synchronize();
            _ranks[r] = new RankRuntime(r, backend, ring, replica);
            return 0;
        });
        string split = tensorRanks == 1 ? "" : $", {_grid.ContextRanks} context x {tensorRanks} tensor";
        string transfers = copyRings is null ? "" : ", ring transfers by copy engine";
        Device = _shared is null
            ? $"cuda x{gpus} ({_backends[0].Device.Name}{split}{transfers})"
            : $"cuda x{gpus} ({_backends[0].Device.Name}{split}) shared by {n} ranks (device copies)";
    }

    public int ContextRanks => _grid.ContextRanks;
    public int TensorRanks => _grid.TensorRanks;
    /// <summary>Every rank, context × tensor: one per GPU unless they share.</summary>
    public int Size => _ranks.Length;
    public int LeadRank => 0;
    public string Device { get; }

    public T[] Run<T>(Func<RankRuntime, T> body) => RunOn(Size, r => body(_ranks[r]));

    private T[] RunOn<T>(int count, Func<int, T> body)
    {
        _threads ??= new RankThreads(count);
        var results = new T[count];
        var errors = _threads.Run(r =>
        {
            _backends[r]?.MakeCurrent();
            results[r] = body(r);
        }, onError: _ =>
        {
            // The other ranks may be waiting for this one.
            _shared?.Cancel();
            _copyRingCancel.Cancel();
        });
        var first = errors.FirstOrDefault(e => e is not null and not OperationCanceledException) ?? errors.FirstOrDefault(e => e is not null);
        if (first is not null) ExceptionDispatchInfo.Capture(first).Throw();
        return results;
    }

    public void Dispose()
    {
        // The engine disposes its group and so may its creator: once is enough.
        if (_ranks is null || _disposed) return;
        _disposed = true;
        RunOn(Size, r =>
        {
            _ranks[r].Dispose();
            _ranks[r].Comm.Dispose();
            _ranks[r].TensorComm?.Dispose();
            _backends[r].Dispose();
            return 0;
        });
        _threads?.Dispose();
    }
}
