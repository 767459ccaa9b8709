using System.Runtime.InteropServices;
using System.Text.Json;
using LongCtx.Comm;
using LongCtx.Cuda.Ranks;
using LongCtx.Model;
using LongCtx.Tests.Cli;
using LongCtx.Tests.Engine;
using LongCtx.Tests.Model;

namespace LongCtx.Tests.Gpu;

/// <summary>
/// GPUs as ranks in separate processes (`longctx launch -- generate --device cuda`, NCCL communicators from
/// ncclCommInitRank): the reference's greedy tokens, and the same tokens and logits as the threaded
/// `--gpus N` group. Which GPU a process takes is checked without a GPU.
/// </summary>
public class GpuProcessRankTests
{
    [Theory]
    [InlineData(0, 1)]
    [InlineData(3, 4)]
    public void LocalRankIsTheGpu(int localRank, int visible) =>
        Assert.Equal(localRank, GpuProcessRank.DeviceFor(Env(localRank), visible));

    [Fact]
    public void LocalRankBeyondTheVisibleGpusIsOneLineNamingIt()
    {
        var e = Assert.Throws<LongCtxException>(() => GpuProcessRank.DeviceFor(Env(2), 2));
        Assert.Contains("LOCAL_RANK=2", e.Message);
        Assert.Contains("2 GPU(s)", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        var none = Assert.Throws<SettingException>(() => GpuProcessRank.DeviceFor(Env(0), 0));
        Assert.Equal(Setting.Device, none.Setting);
        Assert.Contains("no CUDA GPU", none.Message);
    }

    [GpuTheory(minimumGpus: 2)]
    [InlineData("pass-kv")]
    [InlineData("pass-q")]
    public void ProcessesMatchThreadsAndTransformers(string strategy)
    {
        var reference = ReferenceModel.TinyLlama3;
        using var processDir = ModelFixtures.NewTempDir();
        using var threadDir = ModelFixtures.NewTempDir();
        var (processes, processDump) = FixtureGeneration.Run(reference, processDir, ["launch", "--nproc", "2", "--"], "--device", "cuda", "--strategy", strategy);
        var (threads, threadDump) = FixtureGeneration.Run(reference, threadDir, [], "--device", "cuda", "--gpus", "2", "--strategy", strategy);
        FixtureGeneration.AssertMatchesReference(processes, processDump, reference, 2, strategy, bf16: true);
        FixtureGeneration.AssertMatchesReference(threads, threadDump, reference, 2, strategy, bf16: true);
        Assert.Equal(TokenIds(threads), TokenIds(processes));
        // The same kernels on the same data, and all-reduces that add zeros: the logits agree bit for bit.
        Assert.Equal(Logits(threadDump), Logits(processDump));
    }

    private static LaunchEnvironment Env(int localRank) => new(localRank, 8, localRank, "127.0.0.1", 29500, "test-job");

    private static int[] TokenIds(CliRunner.Result r)
    {
        using var json = JsonDocument.Parse(r.Stdout);
        return json.RootElement.GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
    }

    private static float[] Logits(string dump)
    {
        using var file = SafetensorsFile.Open(dump);
        var t = file.Get("logits");
        var values = new float[t.Length];
        Marshal.Copy(t.Data, values, 0, values.Length);
        return values;
    }
}
