using System.Text;

namespace LongCtx.Text;

/// <summary>
/// Incremental detokenizer: a token can end in the middle of a UTF-8 character, so bytes stay pending
/// until they complete one. Uses the same UTF-8 decoder as <see cref="Tokenizer.Decode"/>, so the outputs
/// concatenate to exactly the one-shot decode (invalid bytes become U+FFFD in both).
/// </summary>
public sealed class StreamingDecoder
{
    private readonly Tokenizer _tokenizer;
    private readonly bool _skipSpecial;
    private readonly Decoder _utf8 = new UTF8Encoding(false, false).GetDecoder();
    private char[] _chars = new char[64];

    internal StreamingDecoder(Tokenizer tokenizer, bool skipSpecialTokens)
    {
        _tokenizer = tokenizer;
        _skipSpecial = skipSpecialTokens;
    }

    /// <summary>Text completed by this token; empty while a character is still incomplete.</summary>
    public string Push(int id)
    {
        var bytes = _tokenizer.TokenBytes(id, _skipSpecial);
        return bytes.Length == 0 ? "" : Convert(bytes, flush: false);
    }

    /// <summary>Whatever is still pending (an incomplete character comes out as U+FFFD); resets the state.</summary>
    public string Flush() => Convert([], flush: true);

    private string Convert(ReadOnlySpan<byte> bytes, bool flush)
    {
        int need = _utf8.GetCharCount(bytes, flush: false) + 4;
        if (_chars.Length < need) _chars = new char[Math.Max(need, _chars.Length * 2)];
        int n = _utf8.GetChars(bytes, _chars, flush);
        return n == 0 ? "" : new string(_chars, 0, n);
    }
}
