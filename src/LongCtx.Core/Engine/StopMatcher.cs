namespace LongCtx.Engine;

/// <summary>
/// Finds stop sequences in streamed text. Text that could be the start of a stop sequence is held back
/// until the next piece tells whether it is one, so a client never sees part of a stop sequence.
/// </summary>
public sealed class StopMatcher(IReadOnlyList<string> stops)
{
    private string _held = "";

    /// <summary>Adds decoded text; returns what may be sent now, and whether a stop sequence ended the text.</summary>
    public (string Text, bool Stopped) Push(string text)
    {
        if (stops.Count == 0) return (text, false);
        string s = _held + text;
        int first = -1;
        foreach (var stop in stops)
        {
            int at = s.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (first < 0 || at < first)) first = at;
        }
        if (first >= 0)
        {
            _held = "";
            return (s[..first], true);
        }
        int hold = 0;
        foreach (var stop in stops)
            for (int n = Math.Min(stop.Length - 1, s.Length); n > hold; n--)
                if (s.AsSpan(s.Length - n).SequenceEqual(stop.AsSpan(0, n))) { hold = n; break; }
        _held = s[^hold..];
        return (s[..^hold], false);
    }

    /// <summary>The held-back text, at the end of a generation that no stop sequence ended.</summary>
    public string Flush()
    {
        string s = _held;
        _held = "";
        return s;
    }
}
