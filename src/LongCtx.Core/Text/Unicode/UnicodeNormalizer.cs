using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace LongCtx.Text;

/// <summary>
/// Unicode normalization forms NFC, NFD, NFKC and NFKD from embedded tables (normalization.bin.gz, made by
/// make_normalization_data.py). .NET's string.Normalize does nothing under InvariantGlobalization, which this
/// project sets, so tokenizers whose normalizer is NFC (Qwen) need their own.
/// </summary>
internal static class UnicodeNormalizer
{
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7, LCount = 19, VCount = 21, TCount = 28;
    private const int NCount = VCount * TCount, SCount = LCount * NCount;

    private sealed class Tables
    {
        public readonly Dictionary<int, byte> Classes = new();
        public readonly Dictionary<int, (bool Compat, int[] To)> Decompositions = new();
        public readonly Dictionary<long, int> Compositions = new();
        public string UnicodeVersion = "";
    }

    private static readonly Lazy<Tables> Data = new(Read);

    /// <summary>The Unicode version of the tables.</summary>
    public static string UnicodeVersion => Data.Value.UnicodeVersion;

    public static string Normalize(string s, bool compose, bool compat)
    {
        // Below these code points every character is already in the form (no decomposition, class 0, never composed onto).
        int stableBelow = compat ? 0xA0 : compose ? 0x300 : 0xC0;
        int k = 0;
        while (k < s.Length && s[k] < stableBelow) k++;
        if (k == s.Length) return s;

        var t = Data.Value;
        var cps = new List<int>(s.Length + 8);
        for (int i = 0; i < s.Length;)
        {
            Rune.DecodeFromUtf16(s.AsSpan(i), out var r, out int used);
            int cp = char.IsSurrogate(s[i]) && used == 1 ? s[i] : r.Value; // lone surrogates pass through
            Decompose(t, cp, compat, cps);
            i += used;
        }
        SortMarks(t, cps);
        if (compose) Compose(t, cps);
        var sb = new StringBuilder(cps.Count + 4);
        foreach (int cp in cps)
        {
            if (cp is >= 0xD800 and <= 0xDFFF) sb.Append((char)cp);
            else sb.Append(new Rune(cp).ToString());
        }
        return sb.ToString();
    }

    private static void Decompose(Tables t, int cp, bool compat, List<int> dst)
    {
        if (cp >= SBase && cp < SBase + SCount)
        {
            int si = cp - SBase;
            dst.Add(LBase + si / NCount);
            dst.Add(VBase + si % NCount / TCount);
            if (si % TCount != 0) dst.Add(TBase + si % TCount);
            return;
        }
        if (t.Decompositions.TryGetValue(cp, out var d) && (compat || !d.Compat))
        {
            foreach (int x in d.To) Decompose(t, x, compat, dst);
            return;
        }
        dst.Add(cp);
    }

    private static int Class(Tables t, int cp) => cp < 0x300 ? 0 : t.Classes.TryGetValue(cp, out byte c) ? c : 0;

    /// <summary>Canonical ordering: a stable sort of each run of non-starters by combining class.</summary>
    private static void SortMarks(Tables t, List<int> cps)
    {
        for (int i = 1; i < cps.Count; i++)
        {
            int c = Class(t, cps[i]);
            if (c == 0) continue;
            int j = i;
            while (j > 0 && Class(t, cps[j - 1]) > c)
            {
                (cps[j - 1], cps[j]) = (cps[j], cps[j - 1]);
                j--;
            }
        }
    }

    private static void Compose(Tables t, List<int> cps)
    {
        int w = 0, starter = -1, lastClass = -1; // lastClass -1: nothing between the starter and the next character
        for (int i = 0; i < cps.Count; i++)
        {
            int cp = cps[i], c = Class(t, cp);
            if (starter >= 0 && (lastClass == -1 || lastClass < c) && TryCompose(t, cps[starter], cp, out int composite))
            {
                cps[starter] = composite;
                continue;
            }
            if (c == 0) { starter = w; lastClass = -1; }
            else lastClass = c;
            cps[w++] = cp;
        }
        cps.RemoveRange(w, cps.Count - w);
    }

    private static bool TryCompose(Tables t, int a, int b, out int composite)
    {
        if (a >= LBase && a < LBase + LCount && b >= VBase && b < VBase + VCount)
        {
            composite = SBase + ((a - LBase) * VCount + (b - VBase)) * TCount;
            return true;
        }
        if (a >= SBase && a < SBase + SCount && (a - SBase) % TCount == 0 && b > TBase && b < TBase + TCount)
        {
            composite = a + (b - TBase);
            return true;
        }
        return t.Compositions.TryGetValue(((long)a << 21) | (uint)b, out composite);
    }

    private static Tables Read()
    {
        var t = new Tables();
        using var stream = typeof(UnicodeNormalizer).Assembly.GetManifestResourceStream("LongCtx.Text.normalization.bin.gz")
            ?? throw new InvalidOperationException("normalization.bin.gz is not embedded in LongCtx.Core");
        using var gz = new GZipStream(stream, CompressionMode.Decompress);
        using var ms = new MemoryStream();
        gz.CopyTo(ms);
        byte[] b = ms.ToArray();
        int p = 0;
        int Next() { int v = BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(p)); p += 4; return v; }
        int vlen = Next();
        t.UnicodeVersion = Encoding.UTF8.GetString(b, p, vlen);
        p += vlen;
        for (int n = Next(); n > 0; n--) { int cp = Next(); t.Classes[cp] = (byte)Next(); }
        for (int n = Next(); n > 0; n--)
        {
            int cp = Next();
            bool compat = Next() != 0;
            var to = new int[Next()];
            for (int i = 0; i < to.Length; i++) to[i] = Next();
            t.Decompositions[cp] = (compat, to);
        }
        for (int n = Next(); n > 0; n--) { int a = Next(), c = Next(); t.Compositions[((long)a << 21) | (uint)c] = Next(); }
        return t;
    }
}
