using System.Text;

namespace LongCtx.Text;

/// <summary>
/// Incremental detokenizer: text is released as complete characters arrive. With a ByteLevel decoder a token can
/// end in the middle of a UTF-8 character, so bytes wait until they complete one (the same UTF-8 decoder as
/// <see cref="Tokenizer.Decode"/>: the outputs concatenate to exactly the one-shot decode, invalid bytes as U+FFFD
/// in both). Other decoder chains (ByteFallback, Metaspace, Strip) are run on a short window of recent tokens and
/// the new text is what the window's decode adds to the decode of its part already released, held back while it
/// ends in U+FFFD (an incomplete character).
/// </summary>
public sealed class StreamingDecoder
{
    // A window this far past the released text is let out even if it still ends in U+FFFD: the bytes are invalid, not incomplete.
    private const int MaxPending = 8;

    private readonly Tokenizer _tokenizer;
    private readonly bool _skipSpecial;
    private readonly bool _bytes;
    private readonly Decoder _utf8 = new UTF8Encoding(false, false).GetDecoder();
    private char[] _chars = new char[64];
    private readonly List<int> _window = new();
    private int _released;        // tokens of the window whose text is out
    private string _releasedText = "";

    internal StreamingDecoder(Tokenizer tokenizer, bool skipSpecialTokens, bool byteLevel)
    {
        _tokenizer = tokenizer;
        _skipSpecial = skipSpecialTokens;
        _bytes = byteLevel;
    }

    /// <summary>Text completed by this token; empty while a character is still incomplete.</summary>
    public string Push(int id)
    {
        if (_bytes)
        {
            var bytes = _tokenizer.TokenBytes(id, _skipSpecial);
            return bytes.Length == 0 ? "" : Convert(bytes, flush: false);
        }
        _window.Add(id);
        string text = _tokenizer.Decode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_window), _skipSpecial);
        bool incomplete = text.EndsWith('\uFFFD') && _window.Count - _released < MaxPending;
        if (incomplete || text.Length <= _releasedText.Length || !text.StartsWith(_releasedText, StringComparison.Ordinal)) return "";
        string fresh = text[_releasedText.Length..];
        // Keep the tokens just released as the left context of the next ones (a decoder treats the first token specially).
        _window.RemoveRange(0, _released);
        _released = _window.Count;
        _releasedText = _tokenizer.Decode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_window), _skipSpecial);
        return fresh;
    }

    /// <summary>Whatever is still pending (an incomplete character comes out as U+FFFD); resets the state.</summary>
    public string Flush()
    {
        if (_bytes) return Convert([], flush: true);
        string text = _tokenizer.Decode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_window), _skipSpecial);
        string rest = text.Length > _releasedText.Length && text.StartsWith(_releasedText, StringComparison.Ordinal) ? text[_releasedText.Length..] : "";
        _window.Clear();
        _released = 0;
        _releasedText = "";
        return rest;
    }

    private string Convert(ReadOnlySpan<byte> bytes, bool flush)
    {
        int need = _utf8.GetCharCount(bytes, flush: false) + 4;
        if (_chars.Length < need) _chars = new char[Math.Max(need, _chars.Length * 2)];
        int n = _utf8.GetChars(bytes, _chars, flush);
        return n == 0 ? "" : new string(_chars, 0, n);
    }
}
