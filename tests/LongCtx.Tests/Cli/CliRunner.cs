using System.Diagnostics;

namespace LongCtx.Tests.Cli;

/// <summary>
/// Runs the real `longctx` command as a child process: longctx.dll beside the tests through dotnet, or, where
/// there is no dotnet (the GPU machine's self-contained test runner), the executable LONGCTX_CLI names.
/// </summary>
internal static class CliRunner
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    public static Result Run(params string[] args) => RunWithInput(null, args);

    public static Result RunWithInput(string? stdin, params string[] args) => Start(stdin, null, args);

    public static Result RunWithEnvironment(Dictionary<string, string> environment, params string[] args) => Start(null, environment, args);

    private static Result Start(string? stdin, Dictionary<string, string>? environment, string[] args)
    {
        string? cli = Environment.GetEnvironmentVariable("LONGCTX_CLI");
        var psi = new ProcessStartInfo(string.IsNullOrEmpty(cli) ? "dotnet" : cli)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        if (string.IsNullOrEmpty(cli)) psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "longctx.dll"));
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
