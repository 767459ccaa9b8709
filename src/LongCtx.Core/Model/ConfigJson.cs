using System.Text.Json;

namespace LongCtx.Model;

/// <summary>
/// Typed reads from one JSON object of a config file. Every failure becomes a one-line LongCtxException that
/// names the file and the field, because a user with a broken config.json must be told exactly what to fix.
/// JSON null counts as absent: transformers writes null for unset optional fields.
/// </summary>
internal readonly struct ConfigJson
{
    private readonly JsonElement _obj;

    public ConfigJson(JsonElement obj, string source, string? prefix = null)
    {
        _obj = obj;
        Source = source;
        Prefix = prefix;
    }

    public string Source { get; }
    /// <summary>Path of this object inside the file (e.g. "rope_scaling"), for messages.</summary>
    public string? Prefix { get; }

    public string FieldName(string name) => Prefix is null ? name : $"{Prefix}.{name}";

    public bool Has(string name) => TryGet(name, out _);

    /// <summary>True when the key is written at all, even as null (null can differ from a family default).</summary>
    public bool IsPresent(string name) => _obj.TryGetProperty(name, out _);

    public bool TryGet(string name, out JsonElement value)
    {
        if (_obj.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null) return true;
        value = default;
        return false;
    }

    public LongCtxException Error(string what) => new($"{Source}: {what}");

    public int Int(string name) =>
        OptionalInt(name) ?? throw Error($"required field '{FieldName(name)}' is missing; give it in the file (see the model's original config.json)");

    public int? OptionalInt(string name)
    {
        if (!TryGet(name, out var v)) return null;
        // Some exporters write integral values as 4096.0; accept those but nothing fractional.
        if (v.ValueKind == JsonValueKind.Number)
        {
            if (v.TryGetInt32(out int i)) return i;
            if (v.TryGetDouble(out double d) && d == Math.Floor(d) && d >= int.MinValue && d <= int.MaxValue) return (int)d;
        }
        throw Error($"field '{FieldName(name)}' must be an integer, got {Describe(v)}");
    }

    public double Double(string name) =>
        OptionalDouble(name) ?? throw Error($"required field '{FieldName(name)}' is missing; give it in the file (see the model's original config.json)");

    public double? OptionalDouble(string name)
    {
        if (!TryGet(name, out var v)) return null;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && double.IsFinite(d)) return d;
        throw Error($"field '{FieldName(name)}' must be a number, got {Describe(v)}");
    }

    public bool? OptionalBool(string name)
    {
        if (!TryGet(name, out var v)) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Error($"field '{FieldName(name)}' must be true or false, got {Describe(v)}"),
        };
    }

    public string? OptionalString(string name)
    {
        if (!TryGet(name, out var v)) return null;
        if (v.ValueKind == JsonValueKind.String) return v.GetString();
        throw Error($"field '{FieldName(name)}' must be a string, got {Describe(v)}");
    }

    /// <summary>An integer or a list of integers (eos_token_id is either); empty when absent.</summary>
    public int[] IntOrIntList(string name)
    {
        if (!TryGet(name, out var v)) return [];
        if (v.ValueKind == JsonValueKind.Number) return [OptionalInt(name)!.Value];
        if (v.ValueKind == JsonValueKind.Array)
        {
            var list = new List<int>();
            foreach (var e in v.EnumerateArray())
            {
                if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out int i))
                    throw Error($"field '{FieldName(name)}' must be an integer or a list of integers, got an element {Describe(e)}");
                list.Add(i);
            }
            return list.ToArray();
        }
        throw Error($"field '{FieldName(name)}' must be an integer or a list of integers, got {Describe(v)}");
    }

    /// <summary>A nested object, or null when absent or JSON null.</summary>
    public ConfigJson? OptionalObject(string name)
    {
        if (!TryGet(name, out var v)) return null;
        if (v.ValueKind != JsonValueKind.Object) throw Error($"field '{FieldName(name)}' must be an object, got {Describe(v)}");
        return new ConfigJson(v, Source, FieldName(name));
    }

    public IEnumerable<string> PropertyNames()
    {
        foreach (var p in _obj.EnumerateObject()) yield return p.Name;
    }

    private static string Describe(JsonElement v)
    {
        string raw = v.GetRawText();
        if (raw.Length > 40) raw = raw[..37] + "...";
        return $"{v.ValueKind.ToString().ToLowerInvariant()} {raw}";
    }

    /// <summary>Parses a whole file's text; invalid JSON becomes a message with the line and what is wrong.</summary>
    public static JsonDocument ParseDocument(string json, string source)
    {
        try
        {
            var doc = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                doc.Dispose();
                throw new LongCtxException($"{source}: expected a JSON object at the top level");
            }
            return doc;
        }
        catch (JsonException e)
        {
            string where = e.LineNumber is long l ? $" at line {l + 1}" : "";
            throw new LongCtxException($"{source}: invalid JSON{where} ({FirstSentence(e.Message)}); fix or re-download the file", e);
        }
    }

    private static string FirstSentence(string message)
    {
        int i = message.IndexOf(". ", StringComparison.Ordinal);
        return (i > 0 ? message[..i] : message).TrimEnd('.').ReplaceLineEndings(" ");
    }
}
