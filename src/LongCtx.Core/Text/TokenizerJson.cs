using System.Text.Json;

namespace LongCtx.Text;

/// <summary>
/// Reads tokenizer.json (+ tokenizer_config.json) with JsonDocument (trim-safe, no reflection). Anything it cannot
/// read is one LongCtxException naming the file and the field ("model.merges[3]: ..."), and a component this engine
/// does not implement is named with what is supported.
/// </summary>
internal sealed class TokenizerJson
{
    private readonly string _file;
    private string _field = "(top level)";

    private TokenizerJson(string file) => _file = file;

    public static Tokenizer Load(string dirOrFile)
    {
        if (!Directory.Exists(dirOrFile) && !File.Exists(dirOrFile))
            throw new LongCtxException($"tokenizer {dirOrFile} does not exist: give a tokenizer.json or the directory that holds it");
        string file = Directory.Exists(dirOrFile) ? Path.Combine(dirOrFile, "tokenizer.json") : dirOrFile;
        if (!File.Exists(file)) throw new LongCtxException($"tokenizer.json not found in DIR: {dirOrFile}");
        string configPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(file))!, "tokenizer_config.json");
        var reader = new TokenizerJson(file);
        using var doc = ParseFile(file);
        try
        {
            var parts = reader.Read(doc.RootElement, TokenizerConfig.Read(configPath));
            return new Tokenizer(parts);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or KeyNotFoundException or IndexOutOfRangeException
                                      or ArgumentException or OverflowException)
        {
            throw new LongCtxException($"{file}: {reader._field}: malformed ({e.Message})", e);
        }
    }

    internal static JsonDocument ParseFile(string path)
    {
        try
        {
            return JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { AllowTrailingCommas = true });
        }
        catch (JsonException e)
        {
            throw new LongCtxException($"{path} is not valid JSON: {e.Message}", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LongCtxException($"{path}: cannot read ({e.Message})", e);
        }
    }

    private LongCtxException Error(string problem) => new($"{_file}: {_field}: {problem}");

    private LongCtxException Unsupported(string component, string? type, string supported) =>
        new($"{_file}: {_field}: {component} type '{type ?? "(none)"}' is not supported (supported: {supported})");

    private static JsonElement Prop(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) ? v : default;

    private static string? Str(JsonElement e, string name) =>
        Prop(e, name) is { ValueKind: JsonValueKind.String } v ? v.GetString() : null;

    private static bool Bool(JsonElement e, string name, bool dflt) =>
        Prop(e, name).ValueKind switch { JsonValueKind.True => true, JsonValueKind.False => false, _ => dflt };

    private static bool IsNull(JsonElement e) => e.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null;

    private JsonElement Array(JsonElement e, string name, string field)
    {
        _field = field;
        var a = Prop(e, name);
        if (a.ValueKind != JsonValueKind.Array) throw Error($"expected an array, got {Kind(a)}");
        return a;
    }

    private static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Undefined => "nothing",
        JsonValueKind.Number => $"the number {e.GetRawText()}",
        _ => e.ValueKind.ToString().ToLowerInvariant(),
    };

    private int Id(JsonElement e)
    {
        if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out int id)) throw Error($"expected a token id, got {Kind(e)}");
        if (id < 0) throw Error($"token id {id} is negative");
        return id;
    }

    private TokenizerParts Read(JsonElement root, TokenizerConfig config)
    {
        if (root.ValueKind != JsonValueKind.Object || IsNull(Prop(root, "model")))
            throw new LongCtxException($"{_file}: no \"model\" object: not a Hugging Face tokenizer.json");
        var normalizer = ReadNormalizer(Prop(root, "normalizer"), "normalizer");
        var (pre, byteLevel) = ReadPreTokenizer(Prop(root, "pre_tokenizer"), "pre_tokenizer", last: true);
        var model = ReadModel(Prop(root, "model"), byteLevel);
        var decoder = ReadDecoder(Prop(root, "decoder"), "decoder");
        var added = ReadAddedTokens(Prop(root, "added_tokens"));

        var raw = new AddedTokenMatcher(added.Where(t => !t.Normalized).Select(t => (t.Content, t)));
        var normalized = new AddedTokenMatcher(added.Where(t => t.Normalized).Select(t => (normalizer?.Apply(t.Content) ?? t.Content, t)));

        int? Lookup(string? s)
        {
            if (s == null) return null;
            foreach (var t in added) if (t.Content == s) return t.Id;
            return model.Vocab.TryGetValue(s, out int id) ? id : null;
        }
        int? bos = Lookup(config.Bos);
        int[] eos = config.Eos.Select(Lookup).Where(i => i.HasValue).Select(i => i!.Value).Distinct().ToArray();

        int[] prefix, suffix;
        if (config.AddBos is not null || config.AddEos is not null)
        {
            // transformers builds the post-processor from these flags when tokenizer_config.json sets either.
            prefix = config.AddBos == true && bos is int b ? [b] : [];
            suffix = config.AddEos == true && eos.Length > 0 ? [eos[0]] : [];
        }
        else (prefix, suffix) = ReadPostProcessor(Prop(root, "post_processor"), "post_processor");
        return new TokenizerParts(model, normalizer, pre, decoder, added, raw, normalized, prefix, suffix, bos, eos);
    }

    private TokenModel ReadModel(JsonElement model, bool byteLevel)
    {
        _field = "model.type";
        string type = Str(model, "type") ?? (IsNull(Prop(model, "merges")) ? "(none)" : "BPE");
        if (type is not ("BPE" or "WordLevel")) throw Unsupported("model", type, "BPE, WordLevel");

        _field = "model.vocab";
        var vocabEl = Prop(model, "vocab");
        if (vocabEl.ValueKind != JsonValueKind.Object) throw Error($"expected an object of token: id, got {Kind(vocabEl)}");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var p in vocabEl.EnumerateObject())
        {
            // The field's name is made only for an error: formatting it for each of 262K entries cost a second.
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int id) || id < 0)
            {
                _field = $"model.vocab[{JsonSerializer.Serialize(p.Name, TokenizerJsonContext.Default.String)}]";
                id = Id(p.Value);
            }
            vocab[p.Name] = id;
        }
        if (type == "WordLevel") return new WordLevelModel(vocab, byteLevel, Str(model, "unk_token"));

        _field = "model";
        if (!string.IsNullOrEmpty(Str(model, "continuing_subword_prefix")) || !string.IsNullOrEmpty(Str(model, "end_of_word_suffix")))
            throw Error("BPE continuing_subword_prefix/end_of_word_suffix is not supported");
        if (Prop(model, "dropout") is { ValueKind: JsonValueKind.Number } d && d.GetDouble() > 0)
            throw Error("BPE dropout is a training option and is not supported");
        var merges = new List<(string, string)>();
        int k = 0;
        foreach (var m in Array(model, "merges", "model.merges").EnumerateArray())
        {
            int index = k++;
            if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2 && m[0].ValueKind == JsonValueKind.String && m[1].ValueKind == JsonValueKind.String)
            {
                merges.Add((m[0].GetString()!, m[1].GetString()!));
                continue;
            }
            _field = $"model.merges[{index}]";
            if (m.ValueKind != JsonValueKind.String) throw Error($"expected \"left right\" or [left, right], got {Kind(m)}");
            string s = m.GetString()!;
            int sp = s.IndexOf(' ', 1); // a part is never empty, so the separator is not at 0
            if (sp < 0) throw Error($"merge '{s}' has no space between its two parts");
            merges.Add((s[..sp], s[(sp + 1)..]));
            _field = "model.merges";
        }
        _field = "model";
        var options = new BpeOptions(byteLevel, Bool(model, "ignore_merges", false), Bool(model, "byte_fallback", false),
            Str(model, "unk_token"), Bool(model, "fuse_unk", false));
        return new BpeModel(vocab, merges, options);
    }

    private Normalizer? ReadNormalizer(JsonElement n, string field)
    {
        _field = field;
        if (IsNull(n)) return null;
        string? type = Str(n, "type");
        switch (type)
        {
            case "NFC": return new UnicodeForm(compose: true, compat: false);
            case "NFD": return new UnicodeForm(compose: false, compat: false);
            case "NFKC": return new UnicodeForm(compose: true, compat: true);
            case "NFKD": return new UnicodeForm(compose: false, compat: true);
            case "Lowercase": return new Lowercase();
            case "StripAccents": return new StripAccents();
            case "Strip": return new StripSpaces(Bool(n, "strip_left", true), Bool(n, "strip_right", true));
            case "Prepend": return new Prepend(Str(n, "prepend") ?? throw Error("Prepend without a \"prepend\" string"));
            case "Replace":
            {
                string content = Str(n, "content") ?? throw Error("Replace without a \"content\" string");
                var pattern = Prop(n, "pattern");
                if (Str(pattern, "String") is string literal) return new ReplaceText(literal, content);
                if (Str(pattern, "Regex") is string regex) return new ReplaceRegex(CompileRegex(regex, field + ".pattern.Regex"), content);
                throw Error("Replace pattern is neither {\"String\": ...} nor {\"Regex\": ...}");
            }
            case "Sequence":
            {
                var steps = new List<Normalizer>();
                int i = 0;
                foreach (var x in Array(n, "normalizers", field + ".normalizers").EnumerateArray())
                    if (ReadNormalizer(x, $"{field}.normalizers[{i++}]") is { } step) steps.Add(step);
                return steps.Count switch { 0 => null, 1 => steps[0], _ => new NormalizerSequence(steps.ToArray()) };
            }
            default: throw Unsupported("normalizer", type, "NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Prepend, Replace, Sequence");
        }
    }

    private CodePointRegex CompileRegex(string pattern, string field)
    {
        _field = field;
        try { return new CodePointRegex(pattern); }
        catch (ArgumentException e) { throw Error($"the regex cannot be compiled ({e.Message})"); }
    }

    /// <summary>The pre-tokenizer, and whether it ends in ByteLevel (the model then works on bytes).</summary>
    private (PreTokenizer? Pre, bool ByteLevel) ReadPreTokenizer(JsonElement p, string field, bool last)
    {
        _field = field;
        if (IsNull(p)) return (null, false);
        string? type = Str(p, "type");
        switch (type)
        {
            case "ByteLevel":
                if (!last) throw Error("ByteLevel before another pre-tokenizer is not supported (it must come last)");
                return (new ByteLevelPreTokenizer(Bool(p, "add_prefix_space", false), Bool(p, "use_regex", true)), true);
            case "Split":
            {
                var pattern = Prop(p, "pattern");
                var behavior = Behavior(Str(p, "behavior"), field + ".behavior");
                bool invert = Bool(p, "invert", false);
                _field = field + ".pattern";
                SplitPattern matcher = Str(pattern, "String") is string literal ? new StringPattern(literal)
                    : Str(pattern, "Regex") is string regex
                        ? behavior == SplitBehavior.Isolated && !invert && GptSplitter.ForPattern(regex) is { } fast ? fast
                        : new RegexPattern(CompileRegex(regex, field + ".pattern.Regex"))
                    : throw Error("Split pattern is neither {\"String\": ...} nor {\"Regex\": ...}");
                return (new SplitPreTokenizer(matcher, behavior, invert), false);
            }
            case "Metaspace":
            {
                string replacement = Str(p, "replacement") ?? "\u2581";
                if (replacement.Length != 1) throw Error($"Metaspace replacement '{replacement}' is not one character");
                return (new MetaspacePreTokenizer(replacement[0], PrependScheme(p), Bool(p, "split", true)), false);
            }
            case "Digits":
                return (new SplitPreTokenizer(new CharPattern(CharPattern.IsNumeric),
                    Bool(p, "individual_digits", false) ? SplitBehavior.Isolated : SplitBehavior.Contiguous, false), false);
            case "Punctuation":
                return (new SplitPreTokenizer(new CharPattern(CharPattern.IsPunctuation), Behavior(Str(p, "behavior") ?? "Isolated", field + ".behavior"), false), false);
            case "Whitespace":
                // \w+|[^\w\s]+ with Rust's \w (letters, marks, digits, connectors, joiners); .NET's \w leaves out Mc and Me.
                return (new SplitPreTokenizer(new RegexPattern(new CodePointRegex(@"[\p{L}\p{Nl}\p{M}\p{Nd}\p{Pc}\u200C\u200D]+|[^\p{L}\p{Nl}\p{M}\p{Nd}\p{Pc}\u200C\u200D\s]+")),
                    SplitBehavior.Removed, invert: true), false);
            case "WhitespaceSplit":
                return (new SplitPreTokenizer(new CharPattern(System.Text.Rune.IsWhiteSpace), SplitBehavior.Removed, false), false);
            case "CharDelimiterSplit":
            {
                string delimiter = Str(p, "delimiter") ?? throw Error("CharDelimiterSplit without a \"delimiter\"");
                return (new SplitPreTokenizer(new StringPattern(delimiter), SplitBehavior.Removed, false), false);
            }
            case "BertPreTokenizer":
                return (new PreTokenizerSequence([
                    new SplitPreTokenizer(new CharPattern(System.Text.Rune.IsWhiteSpace), SplitBehavior.Removed, false),
                    new SplitPreTokenizer(new CharPattern(CharPattern.IsPunctuation), SplitBehavior.Isolated, false)]), false);
            case "Sequence":
            {
                var list = Array(p, "pretokenizers", field + ".pretokenizers").EnumerateArray().ToList();
                var steps = new List<PreTokenizer>();
                bool byteLevel = false;
                for (int i = 0; i < list.Count; i++)
                {
                    var (step, bl) = ReadPreTokenizer(list[i], $"{field}.pretokenizers[{i}]", last && i == list.Count - 1);
                    if (step != null) steps.Add(step);
                    byteLevel |= bl;
                }
                return (steps.Count == 1 ? steps[0] : new PreTokenizerSequence(steps.ToArray()), byteLevel);
            }
            default:
                throw Unsupported("pre_tokenizer", type,
                    "ByteLevel, Split, Metaspace, Digits, Punctuation, Whitespace, WhitespaceSplit, CharDelimiterSplit, BertPreTokenizer, Sequence");
        }
    }

    private static string PrependScheme(JsonElement p) =>
        Str(p, "prepend_scheme")?.ToLowerInvariant() ?? (Bool(p, "add_prefix_space", true) ? "always" : "never");

    private SplitBehavior Behavior(string? name, string field)
    {
        _field = field;
        return name switch
        {
            "Removed" => SplitBehavior.Removed,
            "Isolated" => SplitBehavior.Isolated,
            "MergedWithPrevious" => SplitBehavior.MergedWithPrevious,
            "MergedWithNext" => SplitBehavior.MergedWithNext,
            "Contiguous" => SplitBehavior.Contiguous,
            _ => throw Error($"behavior '{name ?? "(none)"}' is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous"),
        };
    }

    private TokenDecoder? ReadDecoder(JsonElement d, string field)
    {
        _field = field;
        if (IsNull(d)) return null;
        string? type = Str(d, "type");
        switch (type)
        {
            case "ByteLevel": return new ByteLevelDecoder();
            case "ByteFallback": return new ByteFallbackDecoder();
            case "Fuse": return new FuseDecoder();
            case "Strip":
            {
                string content = Str(d, "content") ?? " ";
                if (content.Length != 1) throw Error($"Strip content '{content}' is not one character");
                return new StripDecoder(content[0], Prop(d, "start").GetInt32(), Prop(d, "stop").GetInt32());
            }
            case "Replace":
            {
                string? literal = Str(Prop(d, "pattern"), "String");
                if (literal is null) throw Error("Replace decoder supports only a {\"String\": ...} pattern");
                return new ReplaceDecoder(literal, Str(d, "content") ?? throw Error("Replace without a \"content\" string"));
            }
            case "Metaspace":
            {
                string replacement = Str(d, "replacement") ?? "\u2581";
                if (replacement.Length != 1) throw Error($"Metaspace replacement '{replacement}' is not one character");
                return new MetaspaceDecoder(replacement[0], PrependScheme(d) != "never");
            }
            case "Sequence":
            {
                var steps = new List<TokenDecoder>();
                int i = 0;
                foreach (var x in Array(d, "decoders", field + ".decoders").EnumerateArray())
                    if (ReadDecoder(x, $"{field}.decoders[{i++}]") is { } step) steps.Add(step);
                return new DecoderSequence(steps.ToArray());
            }
            default: throw Unsupported("decoder", type, "ByteLevel, ByteFallback, Fuse, Strip, Replace, Metaspace, Sequence");
        }
    }

    private List<AddedToken> ReadAddedTokens(JsonElement a)
    {
        var list = new List<AddedToken>();
        _field = "added_tokens";
        if (IsNull(a)) return list;
        if (a.ValueKind != JsonValueKind.Array) throw Error($"expected an array, got {Kind(a)}");
        int i = 0;
        foreach (var t in a.EnumerateArray())
        {
            _field = $"added_tokens[{i++}].id";
            int id = Id(Prop(t, "id"));
            _field = $"added_tokens[{i - 1}].content";
            string content = Str(t, "content") ?? throw Error("expected a string");
            list.Add(new AddedToken(id, content, Bool(t, "special", false), Bool(t, "lstrip", false), Bool(t, "rstrip", false),
                Bool(t, "single_word", false), Bool(t, "normalized", !Bool(t, "special", false))));
        }
        return list;
    }

    /// <summary>The ids the post-processor puts around a single sequence (TemplateProcessing, Roberta/Bert, also inside a Sequence).</summary>
    private (int[] Prefix, int[] Suffix) ReadPostProcessor(JsonElement pp, string field)
    {
        _field = field;
        string? type = Str(pp, "type");
        switch (type)
        {
            case null when IsNull(pp):
            case "ByteLevel":
                return ([], []);
            case "RobertaProcessing":
            case "BertProcessing":
                _field = field + ".cls";
                int cls = Id(Prop(pp, "cls")[1]);
                _field = field + ".sep";
                int sep = Id(Prop(pp, "sep")[1]);
                return ([cls], [sep]);
            case "Sequence":
            {
                var prefix = new List<int>();
                var suffix = new List<int>();
                int i = 0;
                foreach (var x in Array(pp, "processors", field + ".processors").EnumerateArray())
                {
                    var (p, s) = ReadPostProcessor(x, $"{field}.processors[{i++}]");
                    prefix.AddRange(p);
                    suffix.InsertRange(0, s);
                }
                return (prefix.ToArray(), suffix.ToArray());
            }
            case "TemplateProcessing":
                return ReadTemplate(pp, field);
            default: throw Unsupported("post_processor", type, "TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, Sequence");
        }
    }

    private (int[] Prefix, int[] Suffix) ReadTemplate(JsonElement pp, string field)
    {
        var special = Prop(pp, "special_tokens");
        var before = new List<int>();
        var after = new List<int>();
        bool seenA = false;
        int i = 0;
        foreach (var item in Array(pp, "single", field + ".single").EnumerateArray())
        {
            _field = $"{field}.single[{i++}]";
            if (Prop(item, "Sequence").ValueKind == JsonValueKind.Object) { seenA = true; continue; }
            string name = Str(Prop(item, "SpecialToken"), "id") ?? throw Error("neither a Sequence nor a SpecialToken");
            _field = $"{field}.special_tokens[{JsonSerializer.Serialize(name, TokenizerJsonContext.Default.String)}].ids";
            var ids = Prop(Prop(special, name), "ids");
            if (ids.ValueKind != JsonValueKind.Array) throw Error("the template's special token has no ids");
            foreach (var id in ids.EnumerateArray()) (seenA ? after : before).Add(Id(id));
        }
        return (before.ToArray(), after.ToArray());
    }
}

/// <summary>What tokenizer_config.json says about special tokens.</summary>
internal sealed record TokenizerConfig(string? Bos, IReadOnlyList<string> Eos, bool? AddBos, bool? AddEos)
{
    public static TokenizerConfig Read(string path)
    {
        if (!File.Exists(path)) return new TokenizerConfig(null, [], null, null);
        using var doc = TokenizerJson.ParseFile(path);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw new LongCtxException($"{path}: expected a JSON object");
        var eos = new List<string>();
        var eosEl = root.TryGetProperty("eos_token", out var e) ? e : default;
        if (eosEl.ValueKind == JsonValueKind.Array) foreach (var x in eosEl.EnumerateArray()) AddName(x, eos);
        else AddName(eosEl, eos);
        var bos = new List<string>();
        if (root.TryGetProperty("bos_token", out var b)) AddName(b, bos);
        return new TokenizerConfig(bos.FirstOrDefault(), eos, Flag(root, "add_bos_token"), Flag(root, "add_eos_token"));
    }

    private static bool? Flag(JsonElement root, string name) =>
        root.TryGetProperty(name, out var v) ? v.ValueKind switch { JsonValueKind.True => true, JsonValueKind.False => false, _ => null } : null;

    /// <summary>Special tokens in tokenizer_config.json are a string or an object with "content".</summary>
    private static void AddName(JsonElement e, List<string> dst)
    {
        if (e.ValueKind == JsonValueKind.String) dst.Add(e.GetString()!);
        else if (e.ValueKind == JsonValueKind.Object && e.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String) dst.Add(c.GetString()!);
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(string))]
internal sealed partial class TokenizerJsonContext : System.Text.Json.Serialization.JsonSerializerContext;
