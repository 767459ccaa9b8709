using System.Globalization;
using System.Numerics;
using System.Text;

namespace LongCtx.Cli;

/// <summary>
/// The synthetic retrieval task of bench/retrieval/task.py and the prompts of bench/retrieval/prompts.py, drawn
/// from <see cref="PythonRandom"/> in the same order, so a seed gives the prompts, and the JSONL bytes, that
/// prompts.py writes. A document is filler with records <c>K k v</c> at random places; the prompt ends in the
/// question <c>Q k</c> about one of them, whose answer is v.
/// </summary>
internal static class RetrievalTask
{
    public const int Vocab = 2048, Bos = 0, Q = 2, K = 4;
    public const int RecordLength = 3, QueryLength = 2, TokensPerRecord = 128, MinRecords = 16;
    public const int DefaultSeed = 1234;
    public static readonly IReadOnlyList<int> Filler = Range(16, 512), Keys = Range(512, 1536), Values = Range(1536, 2048);

    private static int[] Range(int start, int stop) => Enumerable.Range(start, stop - start).ToArray();

    /// <summary>A record of a document: its key, its value and the position of its K.</summary>
    public readonly record struct Record(int Key, int Value, int Start);

    /// <summary>task.document: <paramref name="length"/> tokens, BOS first, and its records.</summary>
    public static (int[] Ids, Record[] Records) Document(PythonRandom rng, int length)
    {
        int n = Math.Max(MinRecords, length / TokensPerRecord);
        var keys = rng.Sample(Keys, n);
        var values = rng.Choices(Values, n);
        int filler = length - 1 - n * RecordLength;
        if (filler < 0) throw new LongCtxException($"a document of {length} tokens cannot hold {n} records: give a longer context");
        var cuts = new int[n];
        for (int i = 0; i < n; i++) cuts[i] = (int)rng.RandInt(0, filler);
        Array.Sort(cuts);
        var fill = rng.Choices(Filler, filler);
        var ids = new List<int>(length) { Bos };
        var records = new Record[n];
        int at = 0;
        for (int i = 0; i < n; i++)
        {
            ids.AddRange(fill.AsSpan(at, cuts[i] - at));
            at = cuts[i];
            records[i] = new Record(keys[i], values[i], ids.Count);
            ids.AddRange([K, keys[i], values[i]]);
        }
        ids.AddRange(fill.AsSpan(at));
        return ([.. ids], records);
    }

    /// <summary>prompts.prompt: a document of context − 2 tokens, then the question about one of its records.</summary>
    public static GeneratedPrompt Prompt(PythonRandom rng, int context)
    {
        var (document, records) = Document(rng, context - QueryLength);
        var record = rng.Choice(records);
        return new GeneratedPrompt([.. document, Q, record.Key], record, context, Depth(record.Start, document.Length));
    }

    /// <summary>What prompts.py writes for these arguments, in its order: every context in turn, perContext prompts each.</summary>
    public static List<GeneratedPrompt> Prompts(IEnumerable<int> contexts, int perContext, long seed)
    {
        var rng = new PythonRandom(seed);
        var prompts = new List<GeneratedPrompt>();
        foreach (int context in contexts)
            for (int i = 0; i < perContext; i++) prompts.Add(Prompt(rng, context));
        return prompts;
    }

    /// <summary>Python's <c>round(start / length, 3)</c>: the quotient's double rounded at 3 decimals as its exact binary
    /// value says (ties to even), which scaling by 1000 in doubles does not always give.</summary>
    public static double Depth(int start, int length)
    {
        double x = (double)start / length;
        long bits = BitConverter.DoubleToInt64Bits(x);
        int exponent = (int)((bits >> 52) & 0x7FF);
        long mantissa = bits & 0xFFFFFFFFFFFFFL;
        if (exponent == 0) exponent++; else mantissa |= 1L << 52;
        int shift = 1075 - exponent; // x = mantissa / 2^shift
        if (shift <= 0) return x;
        var scaled = new BigInteger(mantissa) * 1000;
        var denominator = BigInteger.One << shift;
        var q = BigInteger.DivRem(scaled, denominator, out var r);
        int half = (2 * r).CompareTo(denominator);
        if (half > 0 || (half == 0 && !q.IsEven)) q += 1;
        return (double)q / 1000;
    }
}

/// <summary>A generated prompt: its ids (ending in the question), the record asked about, its context and the record's depth.</summary>
internal sealed record GeneratedPrompt(int[] Ids, RetrievalTask.Record Record, int Context, double Depth)
{
    /// <summary>The JSON line prompts.py writes for it (json.dumps with separators (",", ":")).</summary>
    public string ToJsonLine()
    {
        var s = new StringBuilder(Ids.Length * 4 + 96).Append("{\"ids\":[");
        for (int i = 0; i < Ids.Length; i++) s.Append(i == 0 ? "" : ",").Append(Ids[i]);
        s.Append("],\"answer\":[").Append(Record.Value).Append("],\"query_tokens\":").Append(RetrievalTask.QueryLength)
            .Append(",\"context\":").Append(Context).Append(",\"task\":\"kv\",\"depth\":").Append(PythonFloat(Depth)).Append('}');
        return s.ToString();
    }

    /// <summary>Python's repr of a float in [0, 1]: the shortest digits that read back, with ".0" when they are whole.</summary>
    private static string PythonFloat(double x)
    {
        string s = x.ToString("R", CultureInfo.InvariantCulture);
        return s.Contains('.') ? s : s + ".0";
    }
}
