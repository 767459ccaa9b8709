using System.Text.Json;
using System.Text.Json.Nodes;

namespace LongCtx.Server;

/// <summary>Typed reads of a request object's optional fields; a field of the wrong type is a 400 that names it.</summary>
internal static class JsonFields
{
    public static JsonNode? Field(this JsonObject o, string name) => o.TryGetPropertyValue(name, out var v) ? v : null;

    public static bool Has(this JsonObject o, string name) => o.Field(name) is not null;

    public static string? String(this JsonObject o, string name, string? prefix = null) => o.Field(name) switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        _ => throw Wrong(prefix + name, "a string"),
    };

    public static bool? Bool(this JsonObject o, string name, string? prefix = null) => o.Field(name) switch
    {
        null => null,
        JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValue<bool>(),
        _ => throw Wrong(prefix + name, "true or false"),
    };

    public static double? Number(this JsonObject o, string name, string? prefix = null) => o.Field(name) switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.Number => v.GetValue<double>(),
        _ => throw Wrong(prefix + name, "a number"),
    };

    public static long? Integer(this JsonObject o, string name, string? prefix = null)
    {
        var node = o.Field(name);
        if (node is null) return null;
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<long>(out var i)) return i;
        if (node is JsonValue d && d.GetValueKind() == JsonValueKind.Number && d.GetValue<double>() is var x && x == Math.Floor(x) && Math.Abs(x) < 1e15) return (long)x;
        throw Wrong(prefix + name, "an integer");
    }

    public static JsonObject? Object(this JsonObject o, string name, string? prefix = null) => o.Field(name) switch
    {
        null => null,
        JsonObject obj => obj,
        _ => throw Wrong(prefix + name, "an object"),
    };

    public static ApiException Wrong(string param, string expected) => ApiException.BadRequest($"'{param}' must be {expected}", param);

    /// <summary>A token id array; null when the node is not an array of integers.</summary>
    public static int[]? TokenIds(JsonNode? node)
    {
        if (node is not JsonArray a || a.Count == 0) return null;
        var ids = new int[a.Count];
        for (int i = 0; i < a.Count; i++)
        {
            if (a[i] is not JsonValue v || v.GetValueKind() != JsonValueKind.Number || !v.TryGetValue<int>(out ids[i])) return null;
        }
        return ids;
    }
}
