using System.Text.Json;

namespace LongCtx.Cli;

/// <summary>
/// Token ids as their vocabulary entries (tokenizer.json's model.vocab and added_tokens, Metaspace's "▁" dropped),
/// for printing ids readably without loading the tokenizer; ids without an entry, or without a tokenizer.json,
/// print as numbers.
/// </summary>
internal sealed class TokenNames
{
    private const char MetaspaceMark = '\u2581';
    private readonly Dictionary<int, string> _names;

    private TokenNames(Dictionary<int, string> names) => _names = names;

    public static TokenNames Load(string modelDir)
    {
        var names = new Dictionary<int, string>();
        string file = Path.Combine(modelDir, "tokenizer.json");
        if (!File.Exists(file)) return new TokenNames(names);
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(file));
            var root = doc.RootElement;
            if (root.TryGetProperty("model", out var model) && model.TryGetProperty("vocab", out var vocab) && vocab.ValueKind == JsonValueKind.Object)
                foreach (var entry in vocab.EnumerateObject())
                    if (entry.Value.TryGetInt32(out int id)) names.TryAdd(id, entry.Name.TrimStart(MetaspaceMark));
            if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
                foreach (var t in added.EnumerateArray())
                    if (t.TryGetProperty("id", out var id) && id.TryGetInt32(out int i) && t.TryGetProperty("content", out var c) && c.GetString() is { } s)
                        names[i] = s.TrimStart(MetaspaceMark);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            Console.Error.WriteLine($"note: {file} is unreadable ({e.Message}): token ids print as numbers");
            names.Clear();
        }
        return new TokenNames(names);
    }

    public string Text(IEnumerable<int> ids) => string.Join(' ', ids.Select(i => _names.TryGetValue(i, out var s) ? s : i.ToString()));
}
