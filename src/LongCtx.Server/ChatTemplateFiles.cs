using System.Text.Json;
using System.Text.Json.Nodes;

namespace LongCtx.Server;

/// <summary>
/// Where transformers finds a model's chat template and the special tokens it renders it with: chat_template.jinja
/// beside the tokenizer, else tokenizer_config.json's chat_template (a string, or a list of {name, template} of
/// which the one named "default" is used), else chat_template.json; bos_token, eos_token... and the named
/// extra_special_tokens from tokenizer_config.json, or special_tokens_map.json where the config lacks them.
/// </summary>
internal static class ChatTemplateFiles
{
    private static readonly string[] SpecialTokenNames = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"];

    /// <summary>The template's source and a name for messages; null when the directory has none.</summary>
    public static (string Source, string Name)? Find(string dir)
    {
        string jinja = Path.Combine(dir, "chat_template.jinja");
        if (File.Exists(jinja)) return (File.ReadAllText(jinja), jinja);
        string config = Path.Combine(dir, "tokenizer_config.json");
        if (File.Exists(config) && FromConfig(Read(config), config) is { } fromConfig) return fromConfig;
        string json = Path.Combine(dir, "chat_template.json");
        if (File.Exists(json) && FromConfig(Read(json), json) is { } fromJson) return fromJson;
        return null;
    }

    private static (string, string)? FromConfig(JsonObject? root, string path)
    {
        switch (root?["chat_template"])
        {
            case null:
                return null;
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                return (v.GetValue<string>(), $"{path} chat_template");
            case JsonArray list:
                var named = list.OfType<JsonObject>().Where(t => t["name"] is JsonValue && t["template"] is JsonValue)
                    .ToDictionary(t => t["name"]!.ToString(), t => t["template"]!.ToString());
                if (named.TryGetValue("default", out var source)) return (source, $"{path} chat_template 'default'");
                throw new LongCtxException($"{path}: chat_template lists the templates {string.Join(", ", named.Keys.Select(k => $"'{k}'"))} but none named 'default': pass --chat-template FILE");
            default:
                throw new LongCtxException($"{path}: chat_template must be a string or a list of {{name, template}}");
        }
    }

    /// <summary>The special tokens transformers passes to the template, by name (bos_token: "&lt;s&gt;"...).</summary>
    public static Dictionary<string, object?> SpecialTokens(string dir)
    {
        var tokens = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (string file in new[] { "tokenizer_config.json", "special_tokens_map.json" })
        {
            string path = Path.Combine(dir, file);
            if (!File.Exists(path) || Read(path) is not { } root) continue;
            foreach (string name in SpecialTokenNames)
                if (!tokens.ContainsKey(name) && TokenText(root[name]) is { } text) tokens[name] = text;
            // transformers 5 passes the named extra special tokens (Gemma 3's boi_token...), not the unnamed list
            // (additional_special_tokens, or extra_special_tokens as a list).
            if (root["extra_special_tokens"] is JsonObject named)
                foreach (var (name, value) in named)
                    if (!tokens.ContainsKey(name) && TokenText(value) is { } text) tokens[name] = text;
        }
        return tokens;
    }

    /// <summary>A special token in a config: its text, or an object with "content".</summary>
    private static string? TokenText(JsonNode? node) => node switch
    {
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        JsonObject o when o["content"] is JsonValue c && c.GetValueKind() == JsonValueKind.String => c.GetValue<string>(),
        _ => null,
    };

    private static JsonObject? Read(string path)
    {
        try { return JsonNode.Parse(File.ReadAllText(path)) as JsonObject; }
        catch (JsonException e) { throw new LongCtxException($"{path}: not valid JSON ({e.Message})"); }
    }
}
