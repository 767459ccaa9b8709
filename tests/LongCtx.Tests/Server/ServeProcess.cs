using System.Collections.Concurrent;
using System.Diagnostics;
using LongCtx.Tests.Engine;
using LongCtx.Tests.Text;

namespace LongCtx.Tests.Server;

/// <summary>
/// `longctx serve` as its own process on the tiny-llama3 fixture (with the Llama 3 tokenizer), as an operator runs it:
/// its stdout and stderr lines as they come, the address it prints, and signals sent to it.
/// </summary>
internal sealed class ServeProcess : IDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _stdout = new(), _stderr = new();
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ServeProcess(Process process)
    {
        _process = process;
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) _stdout.Enqueue(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) _stderr.Enqueue(e.Data); };
        process.Exited += (_, _) => _exited.TrySetResult();
        process.EnableRaisingEvents = true;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (process.HasExited) _exited.TrySetResult();
    }

    public IReadOnlyCollection<string> Stdout => _stdout;
    public IReadOnlyCollection<string> Stderr => _stderr;
    public int Id => _process.Id;

    /// <summary>Starts `longctx serve --model FIXTURE` with <paramref name="args"/> (port 0 unless given).</summary>
    public static ServeProcess Start(params string[] args) => StartWith(["--model", ReferenceModel.TinyLlama3.Directory, .. args]);

    /// <summary>Starts `longctx serve` with <paramref name="args"/>, the fixture's tokenizer and port 0 unless given.</summary>
    public static ServeProcess StartWith(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "longctx.dll"));
        foreach (var a in new[] { "serve", "--tokenizer", TokenizerFixtures.FetchedDir("llama3") }.Concat(args.Contains("--port") ? [] : ["--port", "0"]).Concat(args))
            psi.ArgumentList.Add(a);
        return new ServeProcess(Process.Start(psi)!);
    }

    /// <summary>The address it prints once it listens; fails when it exits first or takes more than a minute.</summary>
    public async Task<Uri> Address()
    {
        for (var clock = Stopwatch.StartNew(); clock.Elapsed < TimeSpan.FromMinutes(1); await Task.Delay(50))
        {
            if (_stdout.FirstOrDefault(l => l.StartsWith("listening on ", StringComparison.Ordinal)) is { } line) return new Uri(line["listening on ".Length..]);
            if (_exited.Task.IsCompleted)
            {
                await Task.Delay(200); // the last lines
                Assert.Fail($"longctx serve exited ({_process.ExitCode}) before it listened: {string.Join(" | ", _stderr)}");
            }
        }
        throw new TimeoutException("longctx serve did not listen within a minute");
    }

    /// <summary>The exit code, once it exits within <paramref name="timeout"/>; null when it is still running then.</summary>
    public async Task<int?> Exit(TimeSpan timeout)
    {
        if (await Task.WhenAny(_exited.Task, Task.Delay(timeout)) != _exited.Task) return null;
        _process.WaitForExit(); // the output's last lines
        return _process.ExitCode;
    }

    /// <summary>SIGTERM, as a process manager (systemd, Kubernetes, docker stop) stops a server.</summary>
    public void Terminate() => Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!.WaitForExit();

    public void Dispose()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        _process.WaitForExit(TimeSpan.FromSeconds(10));
        _process.Dispose();
    }
}
