using System.Diagnostics;

namespace LongCtx.Tests.Cli;

/// <summary>Runs the real `longctx` command (longctx.dll beside the tests) as a child process.</summary>
internal static class CliRunner
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    public static Result Run(params string[] args) => RunWithInput(null, args);

    public static Result RunWithInput(string? stdin, params string[] args) => Start(stdin, null, args);

    public static Result RunWithEnvironment(Dictionary<string, string> environment, params string[] args) => Start(null, environment, args);

    private static Result Start(string? stdin, Dictionary<string, string>? environment, string[] args)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "longctx.dll"));
        foreach (var (k, v) in environment ?? []) psi.Environment[k] = v;
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (stdin is not null) p.StandardInput.Write(stdin);
        p.StandardInput.Close();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5))) { p.Kill(true); throw new TimeoutException($"longctx {string.Join(' ', args)}"); }
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }
}
