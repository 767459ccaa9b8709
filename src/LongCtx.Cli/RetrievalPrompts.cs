using System.Text.Json;

namespace LongCtx.Cli;

/// <summary>
/// One retrieval test prompt: token ids ending in the question, the answer ids a greedy decode must
/// produce, how many trailing ids form the question (Star / APB's query), the nominal context length it
/// was built for, and its task (rows of the accuracy table are per task and context).
/// </summary>
internal sealed record RetrievalPrompt(int[] Ids, int[] Answer, int QueryTokens, int Context, string Task);

/// <summary>
/// Reads the JSONL that bench/retrieval/prompts.py writes: one object per line with "ids", "answer",
/// "query_tokens", and optionally "context" (default: the number of ids) and "task" (default "retrieval").
/// </summary>
internal static class RetrievalPrompts
{
    public static List<RetrievalPrompt> Read(string path, int vocabSize)
    {
        if (!File.Exists(path)) throw new LongCtxException($"{path}: prompt file not found (write one with bench/retrieval/prompts.py)");
        var prompts = new List<RetrievalPrompt>();
        int lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            string where = $"{path}:{lineNumber}";
            try
            {
                using var doc = JsonDocument.Parse(line);
                prompts.Add(Parse(doc.RootElement, where, vocabSize));
            }
            catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or KeyNotFoundException)
            {
                throw new LongCtxException($"{where}: expected an object with ids, answer and query_tokens ({e.Message})");
            }
        }
        if (prompts.Count == 0) throw new LongCtxException($"{path}: no prompts in the file");
        return prompts;
    }

    private static RetrievalPrompt Parse(JsonElement o, string where, int vocabSize)
    {
        var ids = Ids(o.GetProperty("ids"));
        var answer = Ids(o.GetProperty("answer"));
        int query = o.GetProperty("query_tokens").GetInt32();
        int context = o.TryGetProperty("context", out var c) ? c.GetInt32() : ids.Length;
        string task = o.TryGetProperty("task", out var t) ? t.GetString() ?? "retrieval" : "retrieval";
        if (ids.Length < 2 || answer.Length == 0) throw new LongCtxException($"{where}: ids needs at least 2 tokens and answer at least 1");
        if (query < 1 || query >= ids.Length) throw new LongCtxException($"{where}: query_tokens {query} must be at least 1 and less than the {ids.Length} ids");
        foreach (int id in ids.Concat(answer))
            if ((uint)id >= (uint)vocabSize) throw new LongCtxException($"{where}: token id {id} is outside the model's vocabulary ({vocabSize}); the prompts were made for another model");
        return new RetrievalPrompt(ids, answer, query, context, task);
    }

    private static int[] Ids(JsonElement array) =>
        array.ValueKind == JsonValueKind.Array ? array.EnumerateArray().Select(e => e.GetInt32()).ToArray() : throw new FormatException("ids and answer must be arrays");
}
