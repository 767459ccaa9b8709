using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using LongCtx.Comm;

namespace LongCtx.Cli;

/// <summary>
/// `longctx launch --nproc N -- generate ...`: starts N copies of longctx on this machine, one per rank, with
/// the torchrun-style environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) that any
/// launcher — torchrun, SLURM, a job script on every node — can set instead. Several machines: run it on each
/// with --nnodes, --node-rank, --master-addr, --master-port and one --job-id, as torchrun. Every process gets the
/// job's id (LONGCTX_JOB_ID: random on one machine), which the rendezvous asks of every connection. Rank 0 prints;
/// the others stay quiet. Exits with the first failing rank's status.
/// </summary>
internal static class LaunchCommand
{
    public static Command Create()
    {
        var nproc = new Option<int>("--nproc") { Description = "processes (ranks) to start on this machine; with --device cuda, one per GPU", DefaultValueFactory = _ => 2 };
        var nnodes = new Option<int>("--nnodes") { Description = "machines in the group: run launch on each, with the same --nproc", DefaultValueFactory = _ => 1 };
        var nodeRank = new Option<int>("--node-rank") { Description = "this machine's index, 0 to --nnodes - 1 (node 0 holds rank 0 and the rendezvous)", DefaultValueFactory = _ => 0 };
        var address = new Option<string?>("--master-addr") { Description = "host of node 0 as every node reaches it (default 127.0.0.1, one machine)" };
        var port = new Option<int?>("--master-port") { Description = "rendezvous port of rank 0 (default on one machine: a free one)" };
        var jobId = new Option<string?>("--job-id") { Description = $"the id every rank presents at the rendezvous, the same on every node (default: {LaunchEnvironment.JobIdVariable}, else random on one machine)" };
        var rest = new Argument<string[]>("command") { Description = "the longctx command every rank runs, after --", Arity = ArgumentArity.OneOrMore };
        var command = new Command("launch", "Run a longctx command as one process per rank, on this machine or several") { nproc, nnodes, nodeRank, address, port, jobId, rest };
        command.SetAction(r => Run(Plan(r.GetValue(nproc), r.GetValue(nnodes), r.GetValue(nodeRank), r.GetValue(address), r.GetValue(port),
            r.GetValue(jobId) ?? (Environment.GetEnvironmentVariable(LaunchEnvironment.JobIdVariable) is { Length: > 0 } id ? id : null)), r.GetValue(rest)!));
        return command;
    }

    /// <summary>Where this machine's processes sit in the group: ranks NodeRank·Nproc to NodeRank·Nproc + Nproc − 1.</summary>
    internal sealed record LaunchPlan(int Nproc, int Nnodes, int NodeRank, string MasterAddress, int MasterPort, string JobId)
    {
        public Dictionary<string, string> Environment(int local) => new()
        {
            [LaunchEnvironment.JobIdVariable] = JobId,
            ["RANK"] = (NodeRank * Nproc + local).ToString(),
            ["LOCAL_RANK"] = local.ToString(),
            ["WORLD_SIZE"] = (Nnodes * Nproc).ToString(),
            ["MASTER_ADDR"] = MasterAddress,
            ["MASTER_PORT"] = MasterPort.ToString(),
        };
    }

    /// <param name="jobId">the job's id; null: a random one, which only a launch on one machine may choose.</param>
    internal static LaunchPlan Plan(int nproc, int nnodes, int nodeRank, string? masterAddress, int? masterPort, string? jobId)
    {
        if (nproc < 1 || nproc > 64) throw new LongCtxException($"--nproc {nproc} is out of range: use 1 to 64");
        if (nnodes < 1) throw new LongCtxException($"--nnodes {nnodes} must be 1 or more");
        if (nodeRank < 0 || nodeRank >= nnodes) throw new LongCtxException($"--node-rank {nodeRank} must be 0 to {nnodes - 1} (--nnodes {nnodes})");
        if (nnodes > 1 && (masterAddress is null || masterPort is null))
            throw new LongCtxException($"--nnodes {nnodes}: give every node the same --master-addr (node 0's host) and --master-port");
        if (masterPort is < 1 or > 65535) throw new LongCtxException($"--master-port {masterPort} is not a TCP port");
        if (nnodes > 1 && jobId is null)
            throw new LongCtxException($"--nnodes {nnodes}: give every node the same --job-id (or {LaunchEnvironment.JobIdVariable}), a random string such as `openssl rand -hex 16` prints");
        return new LaunchPlan(nproc, nnodes, nodeRank, masterAddress ?? "127.0.0.1", masterPort ?? FreePort(), jobId ?? LaunchEnvironment.NewJobId());
    }

    private static int Run(LaunchPlan plan, string[] args)
    {
        if (args.Length == 0 || args[0] == "launch") throw new LongCtxException("give the command every rank runs after --, e.g. longctx launch --nproc 2 -- generate --model DIR ...");
        string exe = Environment.ProcessPath ?? throw new LongCtxException("cannot tell which program to start");
        // Under `dotnet longctx.dll` the program is the host and the first argument the assembly.
        string? assembly = Path.GetFileNameWithoutExtension(exe) == "dotnet" ? Environment.GetCommandLineArgs()[0] : null;
        var children = Enumerable.Range(0, plan.Nproc).Select(local =>
        {
            var psi = new ProcessStartInfo(exe) { UseShellExecute = false };
            if (assembly is not null) psi.ArgumentList.Add(assembly);
            foreach (var a in args) psi.ArgumentList.Add(a);
            foreach (var (name, value) in plan.Environment(local)) psi.Environment[name] = value;
            return Process.Start(psi) ?? throw new LongCtxException($"could not start local rank {local}");
        }).ToList();
        // Whichever rank fails first decides the status; the others would wait for it forever (a GPU rank
        // inside an NCCL collective never notices a dead peer), so they are stopped.
        var running = children.ToDictionary(c => c.WaitForExitAsync(), c => c);
        int status = 0;
        while (running.Count > 0)
        {
            var exited = Task.WhenAny(running.Keys).Result;
            var child = running[exited];
            running.Remove(exited);
            if (status != 0 || child.ExitCode == 0) continue;
            status = child.ExitCode;
            foreach (var other in running.Values.Where(o => !o.HasExited)) other.Kill(entireProcessTree: true);
        }
        return status;
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
