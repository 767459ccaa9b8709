using System.Runtime.InteropServices;
using LongCtx.Comm;
using LongCtx.Cuda.Comm;
using LongCtx.Cuda.Native;
using LongCtx.Cuda.Ops;
using LongCtx.Engine;
using LongCtx.Model;

namespace LongCtx.Cuda.Ranks;

/// <summary>
/// This process as one GPU rank of a multi-process group (torchrun-style environment, one process per GPU):
/// GPU LOCAL_RANK, an NCCL communicator made by ncclCommInitRank from the unique id rank 0 created and shared
/// through the TCP rendezvous — split into its context-parallel ring and tensor-parallel group when the
/// world has both (<see cref="RankGrid"/>) — and a model copy. The engine runs on it as on any process group.
/// </summary>
public static class GpuProcessRank
{
    public static ProcessRankGroup Join(ModelConfig config, ModelWeights weights, LaunchEnvironment env, CudaSettings settings, int tensorRanks = 1)
    {
        var grid = RankGrid.ForWorld(config, env.WorldSize, tensorRanks);
        int ordinal = DeviceFor(env, CudaBackend.DeviceCount());
        // The device first: a GPU that cannot be used fails here, before the other ranks wait on this one.
        var backend = new CudaBackend(ordinal, settings);
        var id = env.Rank == 0 ? NewUniqueId() : [];
        id = TcpRendezvous.ShareFromRankZero(env, id, env.RendezvousTimeout);
        if (id.Length != Marshal.SizeOf<Nccl.UniqueId>()) throw new LongCtxException($"rendezvous: rank 0 sent {id.Length} bytes, not an NCCL unique id (does rank 0 run on a GPU?)");
        backend.MakeCurrent(); // NCCL binds the communicator to the current device
        Nccl.Check(Nccl.ncclCommInitRank(out var comm, env.WorldSize, MemoryMarshal.Read<Nccl.UniqueId>(id), env.Rank),
            $"ncclCommInitRank (rank {env.Rank} of {env.WorldSize}, GPU {ordinal})");
        var (ring, slice) = NcclCommunicator.ForGrid(comm, grid, env.Rank, backend.Device);
        var replica = new ModelReplica(config, weights, backend, slice);
        backend.Synchronize();
        var rank = new RankRuntime(env.Rank, backend, ring, replica);
        return new ProcessRankGroup(rank, grid, $"cuda x{env.WorldSize} (processes; this is rank {env.Rank} on GPU {ordinal}, {backend.Device.Name}{grid.Describe(env.Rank)})",
            backend.MakeCurrent);
    }

    /// <summary>The GPU ordinal of this process's rank: LOCAL_RANK, which must be one of the GPUs this process sees.</summary>
    internal static int DeviceFor(LaunchEnvironment env, int visibleGpus)
    {
        if (visibleGpus == 0) throw new SettingException(Setting.Device, $": rank {env.Rank} finds no CUDA GPU on this machine; use cpu", "cuda");
        if (env.LocalRank < visibleGpus) return env.LocalRank;
        string mask = Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES") is { Length: > 0 } v ? $" (CUDA_VISIBLE_DEVICES={v})" : "";
        throw new LongCtxException($"LOCAL_RANK={env.LocalRank} but this process sees {visibleGpus} GPU(s){mask}: start at most {visibleGpus} ranks per node, each with its own LOCAL_RANK from 0");
    }

    private static byte[] NewUniqueId()
    {
        Nccl.Check(Nccl.ncclGetUniqueId(out var id), "ncclGetUniqueId");
        return MemoryMarshal.AsBytes(new ReadOnlySpan<Nccl.UniqueId>(in id)).ToArray();
    }
}
