using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace LongCtx.Cli;

/// <summary>
/// `longctx launch --nproc N -- generate ...`: starts N copies of longctx on this machine, one per rank, with
/// the torchrun-style environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) that any
/// launcher — torchrun, SLURM, a job script on every node — can set instead. Rank 0 prints; the others
/// stay quiet. Exits with the first failing rank's status.
/// </summary>
internal static class LaunchCommand
{
    public static Command Create()
    {
        var nproc = new Option<int>("--nproc") { Description = "processes (ranks) to start", DefaultValueFactory = _ => 2 };
        var port = new Option<int?>("--master-port") { Description = "rendezvous port of rank 0 (default: a free one)" };
        var rest = new Argument<string[]>("command") { Description = "the longctx command every rank runs, after --", Arity = ArgumentArity.OneOrMore };
        var command = new Command("launch", "Run a longctx command as N processes (one per rank) on this machine") { nproc, port, rest };
        command.SetAction(r => Run(r.GetValue(nproc), r.GetValue(port), r.GetValue(rest)!));
        return command;
    }

    private static int Run(int n, int? masterPort, string[] args)
    {
        if (n < 1 || n > 64) throw new LongCtxException($"--nproc {n} is out of range: use 1 to 64");
        if (args.Length == 0 || args[0] == "launch") throw new LongCtxException("give the command every rank runs after --, e.g. longctx launch --nproc 2 -- generate --model DIR ...");
        int p = masterPort ?? FreePort();
        string exe = Environment.ProcessPath ?? throw new LongCtxException("cannot tell which program to start");
        // Under `dotnet longctx.dll` the program is the host and the first argument the assembly.
        string? assembly = Path.GetFileNameWithoutExtension(exe) == "dotnet" ? Environment.GetCommandLineArgs()[0] : null;
        var children = Enumerable.Range(0, n).Select(rank =>
        {
            var psi = new ProcessStartInfo(exe) { UseShellExecute = false };
            if (assembly is not null) psi.ArgumentList.Add(assembly);
            foreach (var a in args) psi.ArgumentList.Add(a);
            psi.Environment["RANK"] = rank.ToString();
            psi.Environment["LOCAL_RANK"] = rank.ToString();
            psi.Environment["WORLD_SIZE"] = n.ToString();
            psi.Environment["MASTER_ADDR"] = "127.0.0.1";
            psi.Environment["MASTER_PORT"] = p.ToString();
            return Process.Start(psi) ?? throw new LongCtxException($"could not start rank {rank}");
        }).ToList();
        int status = 0;
        foreach (var c in children)
        {
            c.WaitForExit();
            if (status == 0 && c.ExitCode != 0)
            {
                status = c.ExitCode;
                // One rank failed: the others would wait for it forever.
                foreach (var other in children.Where(o => !o.HasExited)) other.Kill(entireProcessTree: true);
            }
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
