using System.Text.Json;

namespace LongCtx.Text;

/// <summary>
/// Reads tokenizer.json (+ tokenizer_config.json) with JsonDocument (trim-safe, no reflection) and rejects
/// the parts of the format this engine does not implement, naming them.
/// </summary>
internal static class TokenizerJson
{
    public static Tokenizer Load(string dirOrFile)
    {
        string file = Directory.Exists(dirOrFile) ? Path.Combine(dirOrFile, "tokenizer.json") : dirOrFile;
        if (!File.Exists(file))
        {
            string dir = Directory.Exists(dirOrFile) ? dirOrFile : Path.GetDirectoryName(Path.GetFullPath(dirOrFile)) ?? dirOrFile;
            throw new LongCtxException($"tokenizer.json not found in DIR: {dir}");
        }
        using var doc = ParseFile(file);
        var root = doc.RootElement;

        var model = root.GetProperty("model");
        var bpe = ReadModel(model);
        bool nfc = ReadNormalizer(Prop(root, "normalizer"));
        var (pre, prefixSpace) = ReadPreTokenizer(Prop(root, "pre_tokenizer"));
        CheckDecoder(Prop(root, "decoder"));
        var added = ReadAddedTokens(Prop(root, "added_tokens"));

        var config = ReadConfig(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(file))!, "tokenizer_config.json"));
        int? Lookup(string? s)
        {
            if (s == null) return null;
            foreach (var t in added) if (t.Content == s) return t.Id;
            return bpe.Vocab.TryGetValue(s, out int id) ? id : null;
        }
        int? bos = Lookup(config.Bos);
        var eos = config.Eos.Select(Lookup).Where(i => i.HasValue).Select(i => i!.Value).Distinct().ToArray();

        if (!ReadTemplate(Prop(root, "post_processor"), out var prefix, out var suffix))
        {
            // No TemplateProcessing (e.g. the Llama 3 tokenizer.json with a ByteLevel post-processor): transformers
            // then adds BOS when tokenizer_config says add_bos_token, which defaults to true when a BOS exists.
            bool addBos = config.AddBos ?? bos.HasValue;
            prefix = addBos && bos.HasValue ? [bos.Value] : [];
            suffix = [];
        }
        return new Tokenizer(bpe, pre, nfc, prefixSpace, added, prefix, suffix, bos, eos);
    }

    private static JsonDocument ParseFile(string path)
    {
        try
        {
            return JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new LongCtxException($"{path} is not valid JSON: {e.Message}", e);
        }
    }

    private static JsonElement Prop(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) ? v : default;

    private static string? Str(JsonElement e, string name) =>
        Prop(e, name) is { ValueKind: JsonValueKind.String } v ? v.GetString() : null;

    private static bool Bool(JsonElement e, string name, bool dflt) =>
        Prop(e, name).ValueKind switch { JsonValueKind.True => true, JsonValueKind.False => false, _ => dflt };

    private static bool IsNull(JsonElement e) => e.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null;

    private static BpeModel ReadModel(JsonElement model)
    {
        string type = Str(model, "type") ?? "BPE";
        if (type != "BPE") throw new LongCtxException($"tokenizer model type '{type}' is not supported (only byte-level BPE)");
        if (Bool(model, "byte_fallback", false)) throw new LongCtxException("tokenizer BPE byte_fallback is not supported");
        if (!string.IsNullOrEmpty(Str(model, "continuing_subword_prefix")) || !string.IsNullOrEmpty(Str(model, "end_of_word_suffix")))
            throw new LongCtxException("tokenizer BPE continuing_subword_prefix/end_of_word_suffix is not supported");
        bool ignoreMerges = Bool(model, "ignore_merges", false);

        var vocabEl = model.GetProperty("vocab");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var p in vocabEl.EnumerateObject()) vocab[p.Name] = p.Value.GetInt32();

        var merges = new List<(string, string)>();
        foreach (var m in model.GetProperty("merges").EnumerateArray())
        {
            if (m.ValueKind == JsonValueKind.Array)
            {
                merges.Add((m[0].GetString()!, m[1].GetString()!));
                continue;
            }
            string s = m.GetString()!;
            int sp = s.IndexOf(' ', 1); // a part is never empty, so the separator is not at 0
            if (sp < 0) throw new LongCtxException($"tokenizer merge '{s}' has no space separator");
            merges.Add((s[..sp], s[(sp + 1)..]));
        }
        return new BpeModel(vocab, merges, ignoreMerges);
    }

    /// <summary>True when NFC applies; null, NFC and Sequences of them are supported.</summary>
    private static bool ReadNormalizer(JsonElement n)
    {
        if (IsNull(n)) return false;
        string? type = Str(n, "type");
        if (type == "NFC") return true;
        if (type == "Sequence")
        {
            bool nfc = false;
            foreach (var x in Prop(n, "normalizers").EnumerateArray()) nfc |= ReadNormalizer(x);
            return nfc;
        }
        throw new LongCtxException($"tokenizer normalizer '{type}' is not supported (only NFC)");
    }

    /// <summary>Supports Sequence[Split(Regex, Isolated), ByteLevel(use_regex false)] and plain ByteLevel.</summary>
    private static (PreTokenizer, bool AddPrefixSpace) ReadPreTokenizer(JsonElement p)
    {
        string? type = Str(p, "type");
        if (type == "ByteLevel")
        {
            PreTokenizer pre = Bool(p, "use_regex", true) ? GptSplitter.Gpt2() : new WholePreTokenizer();
            return (pre, Bool(p, "add_prefix_space", false));
        }
        if (type == "Sequence")
        {
            var list = Prop(p, "pretokenizers").EnumerateArray().ToList();
            if (list.Count == 1) return ReadPreTokenizer(list[0]);
            if (list.Count == 2 && Str(list[0], "type") == "Split" && Str(list[1], "type") == "ByteLevel")
            {
                if (Bool(list[1], "use_regex", true))
                    throw new LongCtxException("tokenizer pre_tokenizer ByteLevel with use_regex after Split is not supported");
                return (ReadSplit(list[0]), Bool(list[1], "add_prefix_space", false));
            }
            throw new LongCtxException("tokenizer pre_tokenizer Sequence of "
                + string.Join(", ", list.Select(x => Str(x, "type"))) + " is not supported");
        }
        throw new LongCtxException($"tokenizer pre_tokenizer '{type ?? "null"}' is not supported (only ByteLevel, optionally after a regex Split)");
    }

    private static PreTokenizer ReadSplit(JsonElement split)
    {
        string? pattern = Str(Prop(split, "pattern"), "Regex");
        if (pattern == null) throw new LongCtxException("tokenizer Split pre_tokenizer without a Regex pattern is not supported");
        string? behavior = Str(split, "behavior");
        if (behavior != "Isolated" || Bool(split, "invert", false))
            throw new LongCtxException($"tokenizer Split behavior '{behavior}' (invert {Bool(split, "invert", false)}) is not supported (only Isolated)");
        return (PreTokenizer?)GptSplitter.ForPattern(pattern) ?? new RegexPreTokenizer(pattern);
    }

    private static void CheckDecoder(JsonElement d)
    {
        string? type = Str(d, "type");
        if (type == "ByteLevel") return;
        if (type == "Sequence" && Prop(d, "decoders").EnumerateArray().All(x => Str(x, "type") == "ByteLevel")) return;
        throw new LongCtxException($"tokenizer decoder '{type ?? "null"}' is not supported (only ByteLevel)");
    }

    private static List<AddedToken> ReadAddedTokens(JsonElement a)
    {
        var list = new List<AddedToken>();
        if (a.ValueKind != JsonValueKind.Array) return list;
        foreach (var t in a.EnumerateArray())
            list.Add(new AddedToken(Prop(t, "id").GetInt32(), Str(t, "content") ?? "", Bool(t, "special", false),
                Bool(t, "lstrip", false), Bool(t, "rstrip", false)));
        return list;
    }

    /// <summary>Reads TemplateProcessing's "single" template (also inside a Sequence) into the ids around $A.</summary>
    private static bool ReadTemplate(JsonElement pp, out int[] prefix, out int[] suffix)
    {
        prefix = suffix = [];
        string? type = Str(pp, "type");
        if (type == "Sequence")
        {
            foreach (var x in Prop(pp, "processors").EnumerateArray())
                if (ReadTemplate(x, out prefix, out suffix)) return true;
            return false;
        }
        if (type != "TemplateProcessing") return false;
        var special = Prop(pp, "special_tokens");
        var before = new List<int>();
        var after = new List<int>();
        bool seenA = false;
        foreach (var item in Prop(pp, "single").EnumerateArray())
        {
            if (Prop(item, "Sequence").ValueKind == JsonValueKind.Object) { seenA = true; continue; }
            string? name = Str(Prop(item, "SpecialToken"), "id");
            if (name == null) continue;
            var ids = Prop(Prop(special, name), "ids");
            if (ids.ValueKind != JsonValueKind.Array) throw new LongCtxException($"tokenizer post_processor special token '{name}' has no ids");
            foreach (var id in ids.EnumerateArray()) (seenA ? after : before).Add(id.GetInt32());
        }
        prefix = before.ToArray();
        suffix = after.ToArray();
        return true;
    }

    private sealed record Config(string? Bos, IReadOnlyList<string> Eos, bool? AddBos);

    private static Config ReadConfig(string path)
    {
        if (!File.Exists(path)) return new Config(null, [], null);
        using var doc = ParseFile(path);
        var root = doc.RootElement;
        var eos = new List<string>();
        var eosEl = Prop(root, "eos_token");
        if (eosEl.ValueKind == JsonValueKind.Array) foreach (var x in eosEl.EnumerateArray()) AddName(x, eos);
        else AddName(eosEl, eos);
        var bos = new List<string>();
        AddName(Prop(root, "bos_token"), bos);
        bool? addBos = Prop(root, "add_bos_token").ValueKind switch { JsonValueKind.True => true, JsonValueKind.False => false, _ => null };
        return new Config(bos.FirstOrDefault(), eos, addBos);
    }

    /// <summary>Special tokens in tokenizer_config.json are a string or an object with "content".</summary>
    private static void AddName(JsonElement e, List<string> dst)
    {
        if (e.ValueKind == JsonValueKind.String) dst.Add(e.GetString()!);
        else if (Str(e, "content") is string s) dst.Add(s);
    }
}
