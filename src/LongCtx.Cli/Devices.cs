using System.Text.Json.Nodes;
using LongCtx.Backends.Cpu;
using LongCtx.Comm;
using LongCtx.Cuda;
using LongCtx.Cuda.Attention;
using LongCtx.Cuda.Ops;
using LongCtx.Cuda.Ranks;
using LongCtx.Cuda.Tools;
using LongCtx.Engine;
using LongCtx.Model;

namespace LongCtx.Cli;

/// <summary>
/// The one place the front end turns its device options into ranks: CPU threads or GPUs in this process, this process's
/// rank of a launched group, or one rank standing alone for an N-rank run. The only file of the front ends that names
/// the CUDA backend's types; everything else sees <see cref="IRankGroup"/> and the backends' <see cref="Backends.IDeviceInfo"/>.
/// </summary>
internal static class Devices
{
    public const string Cpu = "cpu", Cuda = "cuda";

    /// <summary>Checks --device and --attention before anything is loaded.</summary>
    public static void Check(string device, string attention)
    {
        if (device is not (Cpu or Cuda)) throw new LongCtxException($"--device {device} is unknown: use cpu or cuda");
        Attention(attention, device);
    }

    /// <summary>
    /// Ranks in this process: <paramref name="ranks"/> (default 1) × <paramref name="tensorRanks"/> CPU threads sharing
    /// <paramref name="threads"/> cores, or GPUs (<see cref="GpuRankGroup"/>: ranks beyond the GPUs share them).
    /// </summary>
    public static IRankGroup Local(ModelConfig config, ModelWeights weights, string device, int? ranks, int gpus, int tensorRanks, string attention, int? threads = null,
        bool fp8Attention = false) =>
        device == Cuda
            ? new GpuRankGroup(config, weights, gpus, ranks, Settings(attention, device, fp8Attention), tensorRanks)
            : new CpuRankGroup(config, weights, ranks ?? 1, threads, tensorRanks);

    /// <summary>This process's rank of a multi-process group: on the CPU, or on GPU LOCAL_RANK.</summary>
    public static ProcessRankGroup Process(ModelConfig config, ModelWeights weights, LaunchEnvironment launch, string device, string attention, int? threads, int tensorRanks,
        bool fp8Attention = false) =>
        device == Cuda
            ? GpuProcessRank.Join(config, weights, launch, Settings(attention, device, fp8Attention), tensorRanks)
            : CpuProcessRank.Join(config, weights, launch, threads, tensorRanks);

    /// <summary>Rank 0 of <paramref name="ranks"/> alone on one GPU (or the CPU), its peers echoing it (<see cref="EchoPeers"/>).</summary>
    public static IRankGroup Echoed(ModelConfig config, ModelWeights weights, string device, int ranks, int timed, string attention, bool fp8Attention = false)
    {
        if (device == Cpu) return ProcessRankGroup.EchoedRank(config, weights, new CpuBackend(), ranks, timed, "cpu x1");
        if (CudaBackend.DeviceCount() == 0) throw new LongCtxException("--device cuda: no CUDA GPU found on this machine; use --device cpu");
        var gpu = new CudaBackend(0, Settings(attention, device, fp8Attention));
        return ProcessRankGroup.EchoedRank(config, weights, gpu, ranks, timed, $"cuda x1 ({gpu.Name})", gpu.MakeCurrent);
    }

    /// <summary>`longctx bench-attention`'s measurements on GPU 0 (<see cref="AttentionBenchmark.Run"/>).</summary>
    public static JsonObject BenchAttention(int[] contexts, int heads, int kvHeads, int headDim, string[] masks, string[] implementations, string[] callPlans,
        int repeat, string? dump, int[] windows, Action<string> note) =>
        AttentionBenchmark.Run(new AttentionBenchmarkSpec(contexts, heads, kvHeads, headDim, masks, implementations, callPlans, repeat, dump, windows), note);

    /// <summary>`longctx bench-gemm`'s measurements on GPU 0 (<see cref="GemmBenchmark.Run"/>), the 8B shape's projections.</summary>
    public static JsonObject BenchGemm(int rows, int repeat, Action<string> note) => GemmBenchmark.Run(rows, GemmBenchmark.Llama8B, repeat, note);

    /// <summary>The cuDNN call plan the environment sets, or the default.</summary>
    public static string DefaultCudnnCalls => AttentionBenchmark.DefaultCallPlan;

    private static CudaSettings Settings(string attention, string device, bool fp8Attention = false)
    {
        var settings = CudaSettings.FromEnvironment().With(Attention(attention, device));
        return settings with { Attention = settings.Attention with { Fp8 = fp8Attention } };
    }

    private static AttentionImplementation Attention(string value, string device)
    {
        var implementation = value switch
        {
            "auto" => AttentionImplementation.Auto,
            "cudnn" => AttentionImplementation.Cudnn,
            "kernel" => AttentionImplementation.Kernel,
            _ => throw new LongCtxException($"--attention {value} is unknown: use auto, cudnn or kernel"),
        };
        if (device != Cuda && implementation != AttentionImplementation.Auto)
            throw new LongCtxException($"--attention {value} needs --device cuda (the CPU backend has one attention implementation)");
        return implementation;
    }
}
