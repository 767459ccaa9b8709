using System.Buffers;
using System.Text;

namespace LongCtx.Text;

/// <summary>
/// Byte-level BPE over int symbol ids: a pre-token's UTF-8 bytes start as the 256 byte tokens and the
/// lowest-ranked adjacent pair is merged until none is left (ties go leftmost, as in Hugging Face).
/// </summary>
internal sealed class BpeModel
{
    private const int CacheLimit = 200_000;

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabBySpan;
    private readonly Dictionary<long, long> _merges; // (left << 32 | right) -> (rank << 32 | merged id)
    private readonly int[] _byteIds;                 // byte -> id of its byte-level char, -1 if absent
    private readonly bool _ignoreMerges;
    private readonly Dictionary<string, int[]> _cache = new();
    private readonly Dictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _cacheBySpan;

    public BpeModel(Dictionary<string, int> vocab, IEnumerable<(string Left, string Right)> merges, bool ignoreMerges)
    {
        _vocab = vocab;
        _vocabBySpan = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _cacheBySpan = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
        _ignoreMerges = ignoreMerges;
        _byteIds = new int[256];
        for (int b = 0; b < 256; b++)
            _byteIds[b] = vocab.TryGetValue(ByteLevel.ByteToChar[b].ToString(), out int id) ? id : -1;
        _merges = new Dictionary<long, long>();
        int rank = 0;
        foreach (var (l, r) in merges)
        {
            // Merges whose parts or result are not in the vocab can never fire; Hugging Face rejects them at load.
            if (vocab.TryGetValue(l, out int li) && vocab.TryGetValue(r, out int ri) && vocab.TryGetValue(l + r, out int mi))
                _merges.TryAdd(((long)li << 32) | (uint)ri, ((long)rank << 32) | (uint)mi);
            rank++;
        }
    }

    public IReadOnlyDictionary<string, int> Vocab => _vocab;

    /// <summary>Appends the ids of one pre-token (raw text, before the byte-level mapping).</summary>
    public void Encode(ReadOnlySpan<char> piece, List<int> output)
    {
        lock (_cache) EncodeLocked(piece, output); // uncontended locks are cheap; keeps the shared cache safe
    }

    private void EncodeLocked(ReadOnlySpan<char> piece, List<int> output)
    {
        if (_cacheBySpan.TryGetValue(piece, out var cached)) { output.AddRange(cached); return; }
        int[] ids = EncodeUncached(piece);
        if (_cache.Count >= CacheLimit) _cache.Clear(); // crude bound; the hot pieces come straight back
        _cacheBySpan[piece] = ids;
        output.AddRange(ids);
    }

    private int[] EncodeUncached(ReadOnlySpan<char> piece)
    {
        int maxBytes = Encoding.UTF8.GetMaxByteCount(piece.Length);
        byte[]? rented = null;
        Span<byte> bytes = maxBytes <= 512 ? stackalloc byte[maxBytes] : (rented = ArrayPool<byte>.Shared.Rent(maxBytes));
        try
        {
            int n = Encoding.UTF8.GetBytes(piece, bytes);
            bytes = bytes[..n];
            if (_ignoreMerges && WholeInVocab(bytes) is int whole and >= 0) return [whole];
            return Merge(bytes);
        }
        finally
        {
            if (rented != null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private int WholeInVocab(ReadOnlySpan<byte> bytes)
    {
        char[]? rented = null;
        Span<char> chars = bytes.Length <= 256 ? stackalloc char[bytes.Length] : (rented = ArrayPool<char>.Shared.Rent(bytes.Length));
        for (int i = 0; i < bytes.Length; i++) chars[i] = ByteLevel.ByteToChar[bytes[i]];
        int id = _vocabBySpan.TryGetValue(chars[..bytes.Length], out int v) ? v : -1;
        if (rented != null) ArrayPool<char>.Shared.Return(rented);
        return id;
    }

    private int[] Merge(ReadOnlySpan<byte> bytes)
    {
        var sym = new int[bytes.Length];
        int n = 0;
        foreach (byte b in bytes)
            if (_byteIds[b] >= 0) sym[n++] = _byteIds[b]; // byte_fallback off and no unk: unknown bytes drop out
        // Quadratic in the piece length, which pre-tokenization keeps short; the cache absorbs repeats.
        while (n > 1)
        {
            long best = long.MaxValue;
            int bestAt = -1;
            for (int i = 0; i + 1 < n; i++)
            {
                if (_merges.TryGetValue(((long)sym[i] << 32) | (uint)sym[i + 1], out long m) && m < best)
                {
                    best = m;
                    bestAt = i;
                }
            }
            if (bestAt < 0) break;
            // Merge every non-overlapping occurrence of this pair left to right: same result as one at a time.
            int rankPair0 = sym[bestAt], rankPair1 = sym[bestAt + 1], merged = (int)(uint)best;
            int w = 0;
            for (int i = 0; i < n; i++)
            {
                if (i + 1 < n && sym[i] == rankPair0 && sym[i + 1] == rankPair1) { sym[w++] = merged; i++; }
                else sym[w++] = sym[i];
            }
            n = w;
        }
        return sym.AsSpan(0, n).ToArray();
    }
}
