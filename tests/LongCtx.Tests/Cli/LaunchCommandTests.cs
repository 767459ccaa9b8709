using LongCtx.Tests.Engine;
using LongCtx.Tests.Model;

namespace LongCtx.Tests.Cli;

/// <summary>
/// Ranks as separate processes joined over TCP (`longctx launch`, the torchrun-style environment): the same
/// greedy tokens and logits as transformers, with both rings; bad launch environments fail in one line.
/// </summary>
public class LaunchCommandTests
{
    [Theory]
    [InlineData("tiny-llama3", "3", "pass-kv")]
    [InlineData("tiny-qwen2", "2", "pass-q")]
    public void ProcessesAsRanksMatchTransformers(string model, string processes, string strategy)
    {
        var reference = ReferenceModel.Named(model);
        using var dir = ModelFixtures.NewTempDir();
        var (r, dump) = FixtureGeneration.Run(reference, dir, ["launch", "--nproc", processes, "--"], "--strategy", strategy);
        FixtureGeneration.AssertMatchesReference(r, dump, reference, int.Parse(processes), strategy);
    }

    [Fact]
    public void TensorParallelInsideContextParallelProcessesMatchesTransformers()
    {
        // 4 processes: 2 context ranks, each with its layers split over 2 tensor ranks (ranks 0-1 and 2-3).
        var reference = ReferenceModel.TinyQwen2;
        using var dir = ModelFixtures.NewTempDir();
        var (r, dump) = FixtureGeneration.Run(reference, dir, ["launch", "--nproc", "4", "--"], "--strategy", "pass-kv", "--tensor-parallel", "2");
        FixtureGeneration.AssertMatchesReference(r, dump, reference, 2, "pass-kv", tensorRanks: 2);
    }

    [Fact]
    public async Task TwoLaunchesAsTwoNodesMatchTransformers()
    {
        // Two machines played by two launches here: 2 nodes x 2 processes, ranks numbered node_rank * 2 + local.
        var reference = ReferenceModel.TinyLlama3;
        using var dir = ModelFixtures.NewTempDir();
        using var secondDir = ModelFixtures.NewTempDir(); // each machine its own files
        int port = FreePort();
        string job = LongCtx.Comm.LaunchEnvironment.NewJobId();
        string[] Node(int rank) => ["launch", "--nnodes", "2", "--node-rank", rank.ToString(), "--nproc", "2", "--master-addr", "127.0.0.1", "--master-port", port.ToString(),
            "--job-id", job, "--"];
        var second = Task.Run(() => FixtureGeneration.Run(reference, secondDir, Node(1), "--strategy", "pass-kv").Result);
        var (first, dump) = FixtureGeneration.Run(reference, dir, Node(0), "--strategy", "pass-kv");
        var node1 = await second.WaitAsync(TimeSpan.FromMinutes(5));
        Assert.True(node1.ExitCode == 0, node1.Stderr);
        Assert.Equal("", node1.Stdout); // only rank 0, on node 0, prints
        FixtureGeneration.AssertMatchesReference(first, dump, reference, 4, "pass-kv");
    }

    [Theory]
    [InlineData(0, 0, "0", "0")]
    [InlineData(0, 1, "1", "1")]
    [InlineData(2, 1, "7", "1")]
    public void RanksAreNumberedNodeByNode(int nodeRank, int local, string rank, string localRank)
    {
        var env = LongCtx.Cli.LaunchCommand.Plan(nproc: 3, nnodes: 3, nodeRank, "node0", 29500, "job-7").Environment(local);
        Assert.Equal(rank, env["RANK"]);
        Assert.Equal(localRank, env["LOCAL_RANK"]);
        Assert.Equal("9", env["WORLD_SIZE"]);
        Assert.Equal("node0", env["MASTER_ADDR"]);
        Assert.Equal("29500", env["MASTER_PORT"]);
        Assert.Equal("job-7", env["LONGCTX_JOB_ID"]);
    }

    /// <summary>On one machine launch makes up a job id, a new one each time; several nodes must be given the same.</summary>
    [Fact]
    public void OneMachineGetsARandomJobId()
    {
        string Id() => LongCtx.Cli.LaunchCommand.Plan(nproc: 2, nnodes: 1, 0, null, null, null).Environment(0)["LONGCTX_JOB_ID"];
        string first = Id();
        Assert.Equal(32, first.Length);
        Assert.NotEqual(first, Id());
    }

    [Theory]
    [InlineData("--nnodes", "2", "--master-addr")]
    [InlineData("--node-rank", "1", "--node-rank 1")]
    [InlineData("--nproc", "0", "--nproc 0")]
    public void BadLaunchOptionsAreOneLine(string option, string value, string named)
    {
        var r = CliRunner.Run("launch", option, value, "--", "generate");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains(named, Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
    }

    [Fact]
    public void SeveralNodesWithoutAJobIdAreOneLine()
    {
        var r = CliRunner.RunWithEnvironment(new() { ["LONGCTX_JOB_ID"] = "" },
            "launch", "--nnodes", "2", "--master-addr", "node0", "--master-port", "29500", "--", "generate");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("--job-id", Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
    }

    [Fact]
    public void IncompleteLaunchEnvironmentIsOneLine()
    {
        var r = CliRunner.RunWithEnvironment(new() { ["WORLD_SIZE"] = "2", ["RANK"] = "0" },
            "generate", "--model", ReferenceModel.TinyLlama3.Directory, "--prompt-ids", "/dev/null");
        Assert.NotEqual(0, r.ExitCode);
        string line = Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("MASTER_PORT", line);
    }

    /// <summary>A process of a multi-process run without the job's id is refused before it joins anything.</summary>
    [Fact]
    public void MissingJobIdIsOneLine()
    {
        var env = Torchrun(rank: 1, worldSize: 2, localRank: 1, port: FreePort());
        env.Remove("LONGCTX_JOB_ID");
        Assert.Contains("LONGCTX_JOB_ID", FailingLine(env));
    }

    [Fact]
    public void GpusOtherThanWorldSizeIsOneLine()
    {
        var line = FailingLine(Torchrun(rank: 0, worldSize: 2, localRank: 0, port: 29500), "--device", "cuda", "--gpus", "3");
        Assert.Contains("--gpus 3 disagrees with WORLD_SIZE=2", line);
    }

    [Fact]
    public void UnusableGpuRankIsOneLine()
    {
        // No GPU here: the driver or the device is missing; on a GPU machine LOCAL_RANK=99 is named.
        var line = FailingLine(Torchrun(rank: 0, worldSize: 1, localRank: 99, port: 29500), "--device", "cuda");
        Assert.Matches("libcuda|no CUDA GPU|LOCAL_RANK=99", line);
    }

    [Fact]
    public void RendezvousTimeoutNamesTheMasterAddress()
    {
        var env = Torchrun(rank: 1, worldSize: 2, localRank: 1, port: FreePort());
        env["LONGCTX_RENDEZVOUS_TIMEOUT"] = "1";
        var line = FailingLine(env);
        Assert.Contains($"127.0.0.1:{env["MASTER_PORT"]}", line);
    }

    private static Dictionary<string, string> Torchrun(int rank, int worldSize, int localRank, int port) => new()
    {
        ["RANK"] = rank.ToString(), ["WORLD_SIZE"] = worldSize.ToString(), ["LOCAL_RANK"] = localRank.ToString(),
        ["MASTER_ADDR"] = "127.0.0.1", ["MASTER_PORT"] = port.ToString(), ["LONGCTX_JOB_ID"] = "test-job",
    };

    /// <summary>Runs generate on the tiny fixture in the given environment; it must fail with exactly one line on stderr.</summary>
    private static string FailingLine(Dictionary<string, string> environment, params string[] options)
    {
        using var dir = ModelFixtures.NewTempDir();
        File.WriteAllText(dir.File("ids.json"), "[1, 2, 3]");
        var r = CliRunner.RunWithEnvironment(environment, ["generate", "--model", ReferenceModel.TinyLlama3.Directory, "--prompt-ids", dir.File("ids.json"), .. options]);
        Assert.NotEqual(0, r.ExitCode);
        return Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    private static int FreePort()
    {
        using var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        return ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
    }
}
