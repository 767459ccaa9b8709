using System.Text;

namespace LongCtx.Text;

/// <summary>
/// A tokenizer.json decoder. Like Hugging Face's, each works on the list of token strings and hands a list on;
/// the decoded text is the concatenation of the last list.
/// </summary>
internal abstract class TokenDecoder
{
    public abstract List<string> Decode(List<string> tokens);
}

/// <summary>ByteLevel: each token's characters are bytes in GPT-2's alphabet (a token holding any other character
/// stands for its own UTF-8); all bytes are decoded together, invalid sequences as U+FFFD.</summary>
internal sealed class ByteLevelDecoder : TokenDecoder
{
    public override List<string> Decode(List<string> tokens)
    {
        var bytes = new List<byte>();
        foreach (var t in tokens) AppendBytes(t, bytes);
        return [Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes))];
    }

    public static void AppendBytes(string token, List<byte> dst)
    {
        foreach (char c in token)
            if (c >= 512 || ByteLevel.CharToByte[c] < 0) { dst.AddRange(Encoding.UTF8.GetBytes(token)); return; }
        foreach (char c in token) dst.Add((byte)ByteLevel.CharToByte[c]);
    }
}

internal sealed class ReplaceDecoder(string from, string to) : TokenDecoder
{
    public override List<string> Decode(List<string> tokens) => tokens.Select(t => t.Replace(from, to, StringComparison.Ordinal)).ToList();
}

/// <summary>ByteFallback: runs of "&lt;0xXX&gt;" tokens become the text of their bytes, or one U+FFFD per byte if the run is not valid UTF-8.</summary>
internal sealed class ByteFallbackDecoder : TokenDecoder
{
    private static readonly UTF8Encoding Strict = new(false, throwOnInvalidBytes: true);

    public override List<string> Decode(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        var run = new List<byte>();
        foreach (var t in tokens)
        {
            if (ByteOf(t) is byte b) { run.Add(b); continue; }
            FlushRun(run, result);
            result.Add(t);
        }
        FlushRun(run, result);
        return result;
    }

    private static void FlushRun(List<byte> run, List<string> result)
    {
        if (run.Count == 0) return;
        try { result.Add(Strict.GetString(run.ToArray())); }
        catch (DecoderFallbackException) { for (int i = 0; i < run.Count; i++) result.Add("\uFFFD"); }
        run.Clear();
    }

    public static byte? ByteOf(string token) =>
        token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
        && byte.TryParse(token.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out byte b) ? b : null;
}

internal sealed class FuseDecoder : TokenDecoder
{
    public override List<string> Decode(List<string> tokens) => [string.Concat(tokens)];
}

/// <summary>Strip: removes up to <c>start</c> leading and <c>stop</c> trailing occurrences of a character from every token.</summary>
internal sealed class StripDecoder(char content, int start, int stop) : TokenDecoder
{
    public override List<string> Decode(List<string> tokens) => tokens.Select(Strip).ToList();

    private string Strip(string t)
    {
        int a = 0, b = t.Length;
        while (a < start && a < b && t[a] == content) a++;
        for (int i = 0; i < stop && b > a && t[b - 1] == content; i++) b--;
        return t[a..b];
    }
}

/// <summary>Metaspace: the replacement character becomes a space, except in the first token when a space was prepended.</summary>
internal sealed class MetaspaceDecoder(char replacement, bool prepends) : TokenDecoder
{
    public override List<string> Decode(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        for (int i = 0; i < tokens.Count; i++)
        {
            var sb = new StringBuilder(tokens[i].Length);
            foreach (char c in tokens[i])
            {
                if (c != replacement) sb.Append(c);
                else if (i > 0 || !prepends) sb.Append(' ');
            }
            result.Add(sb.ToString());
        }
        return result;
    }

    /// <summary>The token with every replacement character as a space (a token seen on its own).</summary>
    public string Spaces(string token) => token.Replace(replacement, ' ');
}

internal sealed class DecoderSequence(TokenDecoder[] steps) : TokenDecoder
{
    public TokenDecoder[] Steps => steps;

    public override List<string> Decode(List<string> tokens)
    {
        foreach (var d in steps) tokens = d.Decode(tokens);
        return tokens;
    }
}
