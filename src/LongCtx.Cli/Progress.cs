using LongCtx.Engine;
using Spectre.Console;

namespace LongCtx.Cli;

/// <summary>
/// Progress for long work (loading, prefill), on stderr so stdout carries only the generated text or JSON. On a
/// terminal: spinners, notes and a live prefill line with percent and time left. When stderr is a log or a pipe: a
/// plain prefill line every few seconds of a long prefill, nothing else. Silent in --json mode and on ranks other than 0.
/// </summary>
internal sealed class Progress(bool enabled)
{
    private static readonly IAnsiConsole Err = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });

    private readonly bool _on = enabled && Environment.GetEnvironmentVariable("RANK") is null or "" or "0";

    /// <summary>On a terminal: spinners and notes are drawn.</summary>
    public bool Enabled => _on && !Console.IsErrorRedirected;

    public T Run<T>(string what, Func<T> work)
    {
        if (!Enabled) return work();
        return Err.Status().Spinner(Spinner.Known.Dots).Start(what, _ => work());
    }

    public void Note(string line)
    {
        if (Enabled) Err.MarkupLineInterpolated($"[grey]{line}[/]");
    }

    /// <summary>What reports a prefill's progress here (<see cref="InferenceEngine.OnPrefillProgress"/>), or null when nothing is shown.</summary>
    public Action<PrefillProgress>? PrefillListener() =>
        !_on ? null : new PrefillReporter(Console.Error, terminal: !Console.IsErrorRedirected, PrefillReporter.PlainInterval).Report;

    /// <summary>A line the user must see even when progress is off (it goes to stderr unless --json).</summary>
    public static void Warn(string line) => Console.Error.WriteLine(line);
}

/// <summary>
/// Writes a prefill's progress: on a terminal one line redrawn at every layer and cleared at the end (the first token
/// follows on stdout); elsewhere a plain line once <paramref name="every"/> has passed since the prefill began or the
/// last line, and a last one at the end if any was written (a short prefill writes none).
/// </summary>
internal sealed class PrefillReporter(TextWriter output, bool terminal, TimeSpan every)
{
    public static readonly TimeSpan PlainInterval = TimeSpan.FromSeconds(5);

    private readonly TimeSpan _every = every;
    private TimeSpan _next = every;
    private bool _wrote;

    public void Report(PrefillProgress p)
    {
        bool done = p.LayersDone >= p.Layers;
        if (terminal)
        {
            output.Write(done ? "\r\u001b[K" : $"\r{Line(p)}\u001b[K");
            output.Flush();
            return;
        }
        if (p.LayersDone == 1) (_next, _wrote) = (_every, false); // a new prefill (chat's next turn)
        if (done ? !_wrote : p.Elapsed < _next) return;
        _next = p.Elapsed + _every;
        _wrote = true;
        output.WriteLine(Line(p));
    }

    public static string Line(PrefillProgress p) =>
        $"prefill: {p.Fraction * 100:0}% ({p.LayersDone} of {p.Layers} layers), {p.Elapsed.TotalSeconds:0.0} s" +
        (p.LayersDone < p.Layers && p.Remaining is { } left ? $", about {left.TotalSeconds:0.0} s left" : "");
}
