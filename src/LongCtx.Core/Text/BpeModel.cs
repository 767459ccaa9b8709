using System.Buffers;
using System.Collections.Concurrent;
using System.Text;

namespace LongCtx.Text;

/// <summary>Options of a tokenizer.json BPE model besides its vocabulary and merges.</summary>
internal sealed record BpeOptions(bool ByteLevel, bool IgnoreMerges, bool ByteFallback, string? UnkToken, bool FuseUnk);

/// <summary>
/// BPE as Hugging Face runs it: a piece starts as its characters (or, byte-level, its UTF-8 bytes) and the
/// adjacent pair with the lowest merge rank is merged, the leftmost first among equal ranks, until no pair
/// has a merge. Long pieces use a priority queue over a linked list (O(n log n)); short ones a plain scan.
/// Characters not in the vocabulary become byte tokens (byte_fallback), the unknown token, or nothing.
/// Thread-safe without a lock: the piece cache is a concurrent dictionary.
/// </summary>
internal sealed class BpeModel : TokenModel
{
    private const int CacheLimit = 200_000, CachedPieceMax = 64, ScanMax = 48;

    private readonly PairTable _merges;
    private readonly int[] _unitIds;                           // byte (byte-level) or BMP char -> id, -1 if absent
    private readonly Dictionary<int, int> _astralIds = new();  // supplementary code point -> id
    private readonly int[]? _fallbackIds;                      // byte -> id of "<0xXX>", when byte_fallback
    private readonly int? _unk;
    private readonly BpeOptions _options;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabBySpan;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _cacheBySpan;
    private int _cacheAdds;
    private readonly HashSet<char>? _glueBeforeSpace; // chars some token joins to a following '▁'; null: no '▁' in the vocabulary

    public BpeModel(Dictionary<string, int> vocab, IEnumerable<(string Left, string Right)> merges, BpeOptions options)
        : base(vocab, options.ByteLevel)
    {
        _options = options;
        _vocabBySpan = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _cacheBySpan = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
        _unk = options.UnkToken is not null && vocab.TryGetValue(options.UnkToken, out int u) ? u : null;
        if (options.ByteLevel)
        {
            _unitIds = new int[256];
            for (int b = 0; b < 256; b++) _unitIds[b] = vocab.TryGetValue(Text.ByteLevel.ByteToChar[b].ToString(), out int id) ? id : -1;
        }
        else
        {
            _unitIds = new int[65536];
            Array.Fill(_unitIds, -1);
            foreach (var (tok, id) in vocab)
            {
                if (tok.Length == 1 && !char.IsSurrogate(tok[0])) _unitIds[tok[0]] = id;
                else if (tok.Length == 2 && char.IsSurrogatePair(tok[0], tok[1])) _astralIds[char.ConvertToUtf32(tok[0], tok[1])] = id;
            }
        }
        if (options.ByteFallback)
        {
            _fallbackIds = new int[256];
            for (int b = 0; b < 256; b++) _fallbackIds[b] = vocab.TryGetValue($"<0x{b:X2}>", out int id) ? id : -1;
        }
        if (!options.ByteLevel && vocab.ContainsKey("\u2581"))
        {
            _glueBeforeSpace = new HashSet<char>();
            foreach (var tok in vocab.Keys)
                for (int i = 1; i < tok.Length; i++)
                    if (tok[i] == '\u2581' && tok[i - 1] != '\u2581') _glueBeforeSpace.Add(tok[i - 1]);
        }
        var list = merges as IReadOnlyCollection<(string, string)> ?? merges.ToList();
        _merges = new PairTable(list.Count);
        int rank = 0;
        foreach (var (l, r) in list)
        {
            // A merge whose parts or result are not in the vocabulary can never fire. A pair listed twice keeps its last rank, as in Hugging Face.
            if (vocab.TryGetValue(l, out int li) && vocab.TryGetValue(r, out int ri) && vocab.TryGetValue(l + r, out int mi))
                _merges.Set(li, ri, ((long)rank << 32) | (uint)mi);
            rank++;
        }
    }

    public override void Encode(ReadOnlySpan<char> piece, List<int> ids)
    {
        if (_glueBeforeSpace is null || piece.Length <= CachedPieceMax) { EncodeWord(piece, ids); return; }
        // SentencePiece-style text is one piece per stretch between added tokens. No vocabulary entry spans a '▁' that
        // follows a character outside _glueBeforeSpace, so no merge can cross such a point: the words there are
        // encoded on their own (and cached), with the same result as the whole stretch at once.
        int start = 0;
        for (int i = 1; i < piece.Length; i++)
        {
            if (piece[i] != '\u2581' || piece[i - 1] == '\u2581' || _glueBeforeSpace.Contains(piece[i - 1])) continue;
            EncodeWord(piece[start..i], ids);
            start = i;
        }
        EncodeWord(piece[start..], ids);
    }

    private void EncodeWord(ReadOnlySpan<char> piece, List<int> ids)
    {
        if (piece.IsEmpty) return;
        if (piece.Length <= CachedPieceMax && _cacheBySpan.TryGetValue(piece, out var cached)) { ids.AddRange(cached); return; }
        if (_options.IgnoreMerges && WholeInVocab(piece) is int whole and >= 0) { ids.Add(whole); return; }
        var sym = new List<int>(piece.Length + 4);
        InitialSymbols(piece, sym);
        int[] result = Merge(sym);
        if (piece.Length <= CachedPieceMax)
        {
            // A crude bound: the hot pieces come straight back after a clear.
            if (Interlocked.Increment(ref _cacheAdds) > CacheLimit) { _cache.Clear(); Interlocked.Exchange(ref _cacheAdds, 0); }
            _cacheBySpan.TryAdd(piece, result);
        }
        ids.AddRange(result);
    }

    private int WholeInVocab(ReadOnlySpan<char> piece)
    {
        if (!ByteLevel) return _vocabBySpan.TryGetValue(piece, out int v) ? v : -1;
        return Vocab.TryGetValue(VocabForm(piece), out int id) ? id : -1;
    }

    private void InitialSymbols(ReadOnlySpan<char> piece, List<int> sym)
    {
        int unkPending = -1; // an unknown run waiting to be written (fuse_unk joins consecutive ones)
        if (ByteLevel)
        {
            int max = Encoding.UTF8.GetMaxByteCount(piece.Length);
            byte[]? rented = null;
            Span<byte> bytes = max <= 512 ? stackalloc byte[max] : (rented = ArrayPool<byte>.Shared.Rent(max));
            int n = Encoding.UTF8.GetBytes(piece, bytes);
            for (int i = 0; i < n; i++)
            {
                int id = _unitIds[bytes[i]];
                if (id >= 0) { Flush(ref unkPending, sym); sym.Add(id); }
                else Unknown(Encoding.UTF8.GetBytes(Text.ByteLevel.ByteToChar[bytes[i]].ToString()), ref unkPending, sym);
            }
            if (rented != null) ArrayPool<byte>.Shared.Return(rented);
        }
        else
        {
            Span<byte> utf8 = stackalloc byte[4];
            for (int i = 0; i < piece.Length;)
            {
                char c = piece[i];
                int id, used = 1;
                if (!char.IsSurrogate(c)) id = _unitIds[c];
                else if (char.IsHighSurrogate(c) && i + 1 < piece.Length && char.IsLowSurrogate(piece[i + 1]))
                {
                    used = 2;
                    id = _astralIds.TryGetValue(char.ConvertToUtf32(c, piece[i + 1]), out int a) ? a : -1;
                }
                else id = -1;
                if (id >= 0) { Flush(ref unkPending, sym); sym.Add(id); }
                else
                {
                    var rune = used == 2 ? new Rune(c, piece[i + 1]) : Rune.TryCreate(c, out var r) ? r : Rune.ReplacementChar;
                    int len = rune.EncodeToUtf8(utf8);
                    Unknown(utf8[..len], ref unkPending, sym);
                }
                i += used;
            }
        }
        Flush(ref unkPending, sym);
    }

    private void Unknown(ReadOnlySpan<byte> bytes, ref int unkPending, List<int> sym)
    {
        if (_fallbackIds is not null)
        {
            bool all = true;
            foreach (byte b in bytes) all &= _fallbackIds[b] >= 0;
            if (all)
            {
                foreach (byte b in bytes) sym.Add(_fallbackIds[b]);
                return;
            }
        }
        if (_unk is not int unk) return; // no unknown token: the character drops out, as in Hugging Face
        if (unkPending >= 0 && !_options.FuseUnk) sym.Add(unkPending);
        unkPending = unk;
    }

    private static void Flush(ref int unkPending, List<int> sym)
    {
        if (unkPending < 0) return;
        sym.Add(unkPending);
        unkPending = -1;
    }

    private bool TryMerge(int left, int right, out long rankAndId) => _merges.TryGet(left, right, out rankAndId);

    private int[] Merge(List<int> symbols)
    {
        int[] id = symbols.ToArray();
        int n = id.Length;
        if (n <= ScanMax) return id.AsSpan(0, MergeByScan(id, n)).ToArray();
        return MergeByQueue(id, n);
    }

    /// <summary>One merge per pass, the lowest (rank, position) first: the queue's order, for short pieces.</summary>
    private int MergeByScan(int[] sym, int n)
    {
        while (n > 1)
        {
            long best = long.MaxValue;
            int at = -1;
            for (int i = 0; i + 1 < n; i++)
                if (TryMerge(sym[i], sym[i + 1], out long m) && m < best) { best = m; at = i; }
            if (at < 0) break;
            sym[at] = (int)(uint)best;
            Array.Copy(sym, at + 2, sym, at + 1, n - at - 2);
            n--;
        }
        return n;
    }

    private int[] MergeByQueue(int[] id, int n)
    {
        int[] prev = ArrayPool<int>.Shared.Rent(n), next = ArrayPool<int>.Shared.Rent(n);
        var heap = new MergeHeap(n);
        for (int i = 0; i < n; i++) { prev[i] = i - 1; next[i] = i + 1 < n ? i + 1 : -1; }
        for (int i = 0; i + 1 < n; i++)
            if (TryMerge(id[i], id[i + 1], out long m)) heap.Add((m & ~0xFFFFFFFFL) | (uint)i);
        heap.Build();
        while (heap.TryPop(out long key))
        {
            int pos = (int)(uint)key, nx = next[pos];
            if (id[pos] < 0 || nx < 0) continue;
            // Stale entries (a side of the pair changed since it was queued) no longer match their rank.
            if (!TryMerge(id[pos], id[nx], out long m) || (m >> 32) != (key >> 32)) continue;
            int merged = (int)(uint)m, after = next[nx];
            id[pos] = merged;
            id[nx] = -1;
            next[pos] = after;
            if (after >= 0) prev[after] = pos;
            int before = prev[pos];
            if (before >= 0 && TryMerge(id[before], merged, out long mb)) heap.Push((mb & ~0xFFFFFFFFL) | (uint)before);
            if (after >= 0 && TryMerge(merged, id[after], out long ma)) heap.Push((ma & ~0xFFFFFFFFL) | (uint)pos);
        }
        var result = new List<int>(n / 2);
        for (int i = 0; i >= 0; i = next[i]) result.Add(id[i]);
        ArrayPool<int>.Shared.Return(prev);
        ArrayPool<int>.Shared.Return(next);
        return result.ToArray();
    }
}

/// <summary>A binary min-heap of (rank &lt;&lt; 32 | position) keys.</summary>
internal sealed class MergeHeap(int capacity)
{
    private long[] _items = new long[Math.Max(capacity, 4)];
    private int _count;

    public void Add(long key)
    {
        if (_count == _items.Length) Array.Resize(ref _items, _items.Length * 2);
        _items[_count++] = key;
    }

    public void Build()
    {
        for (int i = _count / 2 - 1; i >= 0; i--) Down(i);
    }

    public void Push(long key)
    {
        Add(key);
        int i = _count - 1;
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            if (_items[parent] <= key) break;
            _items[i] = _items[parent];
            i = parent;
        }
        _items[i] = key;
    }

    public bool TryPop(out long key)
    {
        if (_count == 0) { key = 0; return false; }
        key = _items[0];
        _items[0] = _items[--_count];
        if (_count > 0) Down(0);
        return true;
    }

    private void Down(int i)
    {
        long item = _items[i];
        while (true)
        {
            int child = 2 * i + 1;
            if (child >= _count) break;
            if (child + 1 < _count && _items[child + 1] < _items[child]) child++;
            if (_items[child] >= item) break;
            _items[i] = _items[child];
            i = child;
        }
        _items[i] = item;
    }
}
