using System.Text.Json;
using System.Text.Json.Nodes;

namespace LongCtx.Server;

/// <summary>
/// Finds text no tokenizer can take in a request: bytes that are not UTF-8, or a string that escapes half a surrogate
/// pair ("\ud800"), which JSON allows and Unicode does not. Such a request is a 400 naming the field, not a failure deep
/// in the tokenizer (System.Text.Json refuses to read such a string: the read fails where the check meets it).
/// </summary>
internal static class JsonUnicode
{
    public static void Check(JsonNode? node, string path = "")
    {
        switch (node)
        {
            case JsonObject o:
                List<KeyValuePair<string, JsonNode?>> fields;
                try { fields = [.. o]; }
                catch (InvalidOperationException) { throw Invalid(path.Length == 0 ? "a field name" : $"a field name in {path}"); }
                foreach (var (name, value) in fields)
                {
                    string at = path.Length == 0 ? name : $"{path}.{name}";
                    if (!Valid(name)) throw Invalid(at);
                    Check(value, at);
                }
                break;
            case JsonArray a:
                for (int i = 0; i < a.Count; i++) Check(a[i], $"{path}[{i}]");
                break;
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                string text;
                try { text = v.GetValue<string>(); }
                catch (InvalidOperationException) { throw Invalid(path); }
                if (!Valid(text)) throw Invalid(path);
                break;
        }
    }

    private static bool Valid(string s) => !s.AsSpan().ContainsAnyInRange('\uD800', '\uDFFF') || AllPaired(s);

    private static bool AllPaired(string s)
    {
        for (int i = 0; i < s.Length; i++)
        {
            if (!char.IsSurrogate(s[i])) continue;
            if (!char.IsHighSurrogate(s[i]) || i + 1 >= s.Length || !char.IsLowSurrogate(s[i + 1])) return false;
            i++;
        }
        return true;
    }

    private static ApiException Invalid(string path) =>
        ApiException.BadRequest($"'{path}' is not valid Unicode (bytes that are not UTF-8, or half of a surrogate pair such as \\ud800 alone): send UTF-8 text, with surrogates only in whole pairs", path);
}
