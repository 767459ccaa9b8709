using Spectre.Console;

namespace LongCtx.Cli;

/// <summary>
/// Progress for long work (loading, prefill) on a terminal. Drawn on stderr so stdout carries only the
/// generated text or JSON; silent in --json mode and when stderr is not a terminal.
/// </summary>
internal sealed class Progress(bool enabled)
{
    private static readonly IAnsiConsole Err = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });

    public bool Enabled { get; } = enabled && !Console.IsErrorRedirected && Environment.GetEnvironmentVariable("RANK") is null or "" or "0";

    public T Run<T>(string what, Func<T> work)
    {
        if (!Enabled) return work();
        return Err.Status().Spinner(Spinner.Known.Dots).Start(what, _ => work());
    }

    public void Note(string line)
    {
        if (Enabled) Err.MarkupLineInterpolated($"[grey]{line}[/]");
    }

    /// <summary>A line the user must see even when progress is off (it goes to stderr unless --json).</summary>
    public static void Warn(string line) => Console.Error.WriteLine(line);
}
