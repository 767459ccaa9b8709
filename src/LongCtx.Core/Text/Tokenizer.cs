using System.Text;

namespace LongCtx.Text;

/// <summary>
/// A Hugging Face tokenizer.json tokenizer (BPE byte-level or SentencePiece-style, WordLevel), equal to the
/// `tokenizers` library: added tokens are cut out of the raw text, then each stretch between them is normalized,
/// cut at the normalized added tokens, pre-tokenized and encoded piece by piece; decoding runs the decoder chain.
/// Thread-safe without a lock held across an encode.
/// </summary>
public sealed class Tokenizer
{
    private readonly TokenizerParts _p;
    private readonly Dictionary<string, AddedToken> _addedByContent = new(StringComparer.Ordinal);
    private readonly string?[] _idToToken;
    private readonly byte[][] _idToBytes;
    private readonly bool[] _isSpecial;

    internal Tokenizer(TokenizerParts parts)
    {
        _p = parts;
        foreach (var t in parts.Added) _addedByContent.TryAdd(t.Content, t);
        int max = -1;
        foreach (int id in parts.Model.Vocab.Values) max = Math.Max(max, id);
        foreach (var t in parts.Added) max = Math.Max(max, t.Id);
        VocabSize = max + 1;
        _idToToken = new string?[VocabSize];
        _isSpecial = new bool[VocabSize];
        foreach (var (tok, id) in parts.Model.Vocab) _idToToken[id] = tok;
        foreach (var t in parts.Added)
        {
            _idToToken[t.Id] = t.Content;
            _isSpecial[t.Id] = t.Special;
        }
        _idToBytes = new byte[VocabSize][];
        for (int id = 0; id < VocabSize; id++)
            _idToBytes[id] = _idToToken[id] is { } tok ? parts.TokenBytes(tok) : [];
    }

    public static Tokenizer Load(string dirOrFile) => TokenizerJson.Load(dirOrFile);

    /// <summary>Max id + 1 over the vocab and the added tokens.</summary>
    public int VocabSize { get; }

    public int? BosTokenId => _p.Bos;

    /// <summary>tokenizer_config.json's eos_token (one id, or several where it lists them).</summary>
    public IReadOnlyList<int> EosTokenIds => _p.Eos;

    /// <summary>The ids of the text; with addSpecialTokens also the BOS/EOS transformers puts around a prompt
    /// (tokenizer_config.json's add_bos_token/add_eos_token where it sets them, else the tokenizer.json post-processor).</summary>
    public int[] Encode(string text, bool addSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 4);
        if (addSpecialTokens) ids.AddRange(_p.Prefix);
        var parts = new List<(int Start, int Length, AddedToken? Token)>();
        _p.RawAdded.Split(text, parts);
        var scratch = new Scratch();
        foreach (var (start, length, token) in parts)
        {
            if (token != null) ids.Add(token.Id);
            else EncodeSegment(text, start, length, ids, scratch);
        }
        if (addSpecialTokens) ids.AddRange(_p.Suffix);
        return ids.ToArray();
    }

    private sealed class Scratch
    {
        public readonly List<(int Start, int Length, AddedToken? Token)> Parts = new();
        public readonly List<Piece> In = new(), Out = new();
    }

    private void EncodeSegment(string text, int start, int length, List<int> ids, Scratch s)
    {
        string seg = text;
        int segStart = start, segLength = length;
        if (_p.Normalizer is { } n)
        {
            seg = n.Apply(text.Substring(start, length));
            segStart = 0;
            segLength = seg.Length;
        }
        if (_p.NormalizedAdded.IsEmpty)
        {
            EncodeText(new Piece(seg, segStart, segLength, start == 0), ids, s);
            return;
        }
        s.Parts.Clear();
        _p.NormalizedAdded.Split(seg.AsSpan(segStart, segLength), s.Parts);
        foreach (var (ps, pl, token) in s.Parts)
        {
            if (token != null) ids.Add(token.Id);
            else EncodeText(new Piece(seg, segStart + ps, pl, start == 0 && ps == 0), ids, s);
        }
    }

    private void EncodeText(Piece piece, List<int> ids, Scratch s)
    {
        if (piece.Length == 0) return;
        if (_p.PreTokenizer is null)
        {
            _p.Model.Encode(piece.Span, ids);
            return;
        }
        s.In.Clear();
        s.Out.Clear();
        s.In.Add(piece);
        _p.PreTokenizer.Apply(s.In, s.Out);
        foreach (var p in s.Out) _p.Model.Encode(p.Span, ids);
    }

    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        if (_p.DecodesBytes)
        {
            var bytes = new List<byte>(ids.Length * 4);
            foreach (int id in ids) bytes.AddRange(TokenBytes(id, skipSpecialTokens));
            return Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes));
        }
        var tokens = new List<string>(ids.Length);
        foreach (int id in ids)
            if ((uint)id < (uint)VocabSize && _idToToken[id] is { } t && !(skipSpecialTokens && _isSpecial[id])) tokens.Add(t);
        return _p.Decoder is null ? string.Join(' ', tokens) : string.Concat(_p.Decoder.Decode(tokens));
    }

    public int? TokenToId(string token)
    {
        if (_addedByContent.TryGetValue(token, out var t)) return t.Id;
        return _p.Model.Vocab.TryGetValue(token, out int id) ? id : null;
    }

    public string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    public StreamingDecoder CreateStreamingDecoder(bool skipSpecialTokens = false) => new(this, skipSpecialTokens, _p.DecodesBytes);

    /// <summary>The bytes one token stands for on its own (for logprobs); empty for ids outside the vocab (models
    /// often pad their embedding past the tokenizer) and for special tokens when skipping them.</summary>
    public ReadOnlySpan<byte> TokenBytes(int id, bool skipSpecial)
    {
        if ((uint)id >= (uint)_idToBytes.Length || (skipSpecial && _isSpecial[id])) return default;
        return _idToBytes[id];
    }
}

/// <summary>The components of a loaded tokenizer.json, with tokenizer_config.json's special tokens.</summary>
internal sealed record TokenizerParts(
    TokenModel Model,
    Normalizer? Normalizer,
    PreTokenizer? PreTokenizer,
    TokenDecoder? Decoder,
    IReadOnlyList<AddedToken> Added,
    AddedTokenMatcher RawAdded,
    AddedTokenMatcher NormalizedAdded,
    int[] Prefix,
    int[] Suffix,
    int? Bos,
    int[] Eos)
{
    /// <summary>The decoder is ByteLevel alone: decoding is a concatenation of per-token bytes.</summary>
    public bool DecodesBytes => Decoder is Text.ByteLevelDecoder or DecoderSequence { Steps: [Text.ByteLevelDecoder] };

    /// <summary>A token's bytes on its own: the byte alphabet undone, or the replacements and byte fallback applied.</summary>
    public byte[] TokenBytes(string token)
    {
        var steps = Decoder is DecoderSequence seq ? seq.Steps : Decoder is null ? [] : [Decoder];
        if (steps.Any(d => d is Text.ByteLevelDecoder))
        {
            var b = new List<byte>(token.Length);
            Text.ByteLevelDecoder.AppendBytes(token, b);
            return b.ToArray();
        }
        foreach (var d in steps)
        {
            if (d is ReplaceDecoder) token = d.Decode([token])[0];
            else if (d is MetaspaceDecoder m) token = m.Spaces(token);
            else if (d is ByteFallbackDecoder && ByteFallbackDecoder.ByteOf(token) is byte one) return [one];
        }
        return Encoding.UTF8.GetBytes(token);
    }
}
