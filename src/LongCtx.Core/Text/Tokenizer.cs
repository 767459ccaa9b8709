using System.Text;

namespace LongCtx.Text;

/// <summary>
/// A Hugging Face tokenizer.json byte-level BPE tokenizer (Llama 3, Qwen 2/3 and GPT-2 style).
/// Encode: split on added tokens, then normalizer -> pre-tokenizer -> BPE on the text between them.
/// Thread-safe: the shared pre-token cache is locked.
/// </summary>
public sealed class Tokenizer
{
    private readonly BpeModel _bpe;
    private readonly PreTokenizer _pre;
    private readonly bool _nfc;
    private readonly bool _addPrefixSpace;
    private readonly AddedTokens _addedSplitter;
    private readonly Dictionary<string, AddedToken> _addedByContent;
    private readonly string?[] _idToToken;
    private readonly byte[][] _idToBytes;
    private readonly bool[] _isSpecial;
    private readonly int[] _prefixIds, _suffixIds;

    internal Tokenizer(BpeModel bpe, PreTokenizer pre, bool nfc, bool addPrefixSpace, IReadOnlyList<AddedToken> added,
        int[] prefixIds, int[] suffixIds, int? bos, IReadOnlyList<int> eos)
    {
        _bpe = bpe;
        _pre = pre;
        _nfc = nfc;
        _addPrefixSpace = addPrefixSpace;
        _addedSplitter = new AddedTokens(added);
        _addedByContent = new Dictionary<string, AddedToken>(StringComparer.Ordinal);
        foreach (var t in added) _addedByContent[t.Content] = t;
        _prefixIds = prefixIds;
        _suffixIds = suffixIds;
        BosTokenId = bos;
        EosTokenIds = eos;

        int max = -1;
        foreach (int id in bpe.Vocab.Values) max = Math.Max(max, id);
        foreach (var t in added) max = Math.Max(max, t.Id);
        VocabSize = max + 1;
        _idToToken = new string?[VocabSize];
        _idToBytes = new byte[VocabSize][];
        _isSpecial = new bool[VocabSize];
        var buf = new List<byte>(32);
        foreach (var (tok, id) in bpe.Vocab)
        {
            _idToToken[id] = tok;
            buf.Clear();
            ByteLevel.AppendBytes(tok, buf);
            _idToBytes[id] = buf.ToArray();
        }
        foreach (var t in added)
        {
            // Added tokens are literal text, not byte-level strings.
            _idToToken[t.Id] = t.Content;
            _idToBytes[t.Id] = Encoding.UTF8.GetBytes(t.Content);
            _isSpecial[t.Id] = t.Special;
        }
    }

    public static Tokenizer Load(string dirOrFile) => TokenizerJson.Load(dirOrFile);

    /// <summary>Max id + 1 over the vocab and the added tokens.</summary>
    public int VocabSize { get; }

    public int? BosTokenId { get; }

    public IReadOnlyList<int> EosTokenIds { get; }

    public int[] Encode(string text, bool addSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 4);
        if (addSpecialTokens) ids.AddRange(_prefixIds);
        var parts = new List<(int Start, int Length, AddedToken? Token)>();
        _addedSplitter.Split(text, parts);
        var pieces = new List<(int Start, int Length)>();
        foreach (var (start, length, token) in parts)
        {
            if (token != null) ids.Add(token.Id);
            else EncodeSegment(text.AsSpan(start, length), pieces, ids);
        }
        if (addSpecialTokens) ids.AddRange(_suffixIds);
        return ids.ToArray();
    }

    private void EncodeSegment(ReadOnlySpan<char> segment, List<(int Start, int Length)> pieces, List<int> ids)
    {
        if (_nfc || _addPrefixSpace)
        {
            string s = segment.ToString();
            if (_nfc && !s.IsNormalized(NormalizationForm.FormC)) s = s.Normalize(NormalizationForm.FormC);
            if (_addPrefixSpace && !s.StartsWith(' ')) s = " " + s;
            segment = s;
        }
        pieces.Clear();
        _pre.Split(segment, pieces);
        foreach (var (start, length) in pieces) _bpe.Encode(segment.Slice(start, length), ids);
    }

    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        var bytes = new List<byte>(ids.Length * 4);
        foreach (int id in ids) bytes.AddRange(TokenBytes(id, skipSpecialTokens));
        return Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes));
    }

    public int? TokenToId(string token)
    {
        if (_addedByContent.TryGetValue(token, out var t)) return t.Id;
        return _bpe.Vocab.TryGetValue(token, out int id) ? id : null;
    }

    public string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    public StreamingDecoder CreateStreamingDecoder(bool skipSpecialTokens = false) => new(this, skipSpecialTokens);

    /// <summary>The bytes a token decodes to; empty for ids outside the vocab (models often pad their
    /// embedding past the tokenizer) and for special tokens when skipping them.</summary>
    public ReadOnlySpan<byte> TokenBytes(int id, bool skipSpecial)
    {
        if ((uint)id >= (uint)_idToBytes.Length || (skipSpecial && _isSpecial[id])) return default;
        return _idToBytes[id];
    }
}
