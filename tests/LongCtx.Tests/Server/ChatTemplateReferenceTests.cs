using System.Globalization;
using System.Text.Json.Nodes;
using LongCtx.Server;
using LongCtx.Tests.Text;
using LongCtx.Text;
using LongCtx.Text.Jinja;

namespace LongCtx.Tests.Server;

/// <summary>
/// Each family's chat template (tests/data/chat/templates) renders its conversations as transformers'
/// apply_chat_template does (tests/data/chat/FAMILY.json, from bench/reference/make_chat_refs.py): the same text,
/// the same refusals (raise_exception) and, where the reference has them, the same ids from the family's tokenizer.
/// </summary>
public class ChatTemplateReferenceTests
{
    private static string ChatData => Path.Combine(TokenizerFixtures.RepoRoot, "tests", "data", "chat");

    public static TheoryData<string> Families()
    {
        var data = new TheoryData<string>();
        foreach (string file in Directory.GetFiles(ChatData, "*.json").Order())
            if (Path.GetFileName(file) != "jinja2-cases.json") data.Add(Path.GetFileNameWithoutExtension(file));
        return data;
    }

    internal static JsonObject Reference(string family) => (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(ChatData, family + ".json")))!;

    [Theory]
    [MemberData(nameof(Families))]
    public void RendersAsTransformers(string family)
    {
        var r = Reference(family);
        string source = r["template"]!.GetValue<string>();
        Assert.Equal(File.ReadAllText(Path.Combine(ChatData, "templates", r["template_file"]!.GetValue<string>())), source);
        var special = r["special_tokens"]!.AsObject().ToDictionary(kv => kv.Key, kv => (object?)kv.Value?.DeepClone());
        var template = ChatTemplate.Parse(source, family, special);
        var now = DateTime.Parse(r["now"]!.GetValue<string>(), CultureInfo.InvariantCulture);
        string tokenizerName = r["tokenizer"]!.GetValue<string>();
        Tokenizer? tokenizer = null;
        ChatIdsOracle? oracle = null;
        int differing = 0;
        foreach (var c in r["cases"]!.AsArray().Select(x => x!.AsObject()))
        {
            var messages = (JsonArray)c["messages"]!.DeepClone();
            bool generationPrompt = c["add_generation_prompt"]!.GetValue<bool>();
            var kwargs = c["kwargs"]!.AsObject().ToDictionary(kv => kv.Key, kv => (object?)kv.Value?.DeepClone());
            string Render() => template.RenderJson(messages, generationPrompt, kwargs, () => now);
            string name = c["name"]!.GetValue<string>();
            if (c["error"] is { } error)
            {
                var e = Assert.Throws<TemplateException>(Render);
                Assert.True(e.Raised, $"{family}/{name}: {e.Message}");
                Assert.Equal(error.GetValue<string>(), e.Detail);
                continue;
            }
            string text = c["text"]!.GetValue<string>();
            Assert.True(text == Render(), $"{family}/{name}: rendered\n{Render()}\nexpected\n{text}");
            if (c["ids"] is not JsonArray ids) continue;
            tokenizer ??= Tokenizer.Load(TokenizerFixtures.FetchedDir(tokenizerName));
            int[] want = ids.Select(x => x!.GetValue<int>()).ToArray(), got = tokenizer.Encode(text);
            oracle ??= TransformersEncodesAsTokenizerJson(tokenizerName) ? null : new ChatIdsOracle(TokenizerFixtures.FetchedDir(tokenizerName));
            if (oracle is null)
            {
                Assert.True(want.SequenceEqual(got), $"{family}/{name}: ids\n{FamilyReferenceTests.Show(got)}\nexpected\n{FamilyReferenceTests.Show(want)}");
                continue;
            }
            // transformers rebuilt this tokenizer from its class (see TransformersEncodesAsTokenizerJson): the ids of
            // the model's tokenizer.json are Hugging Face tokenizers' own.
            int[] hf = oracle.Encode(text);
            Assert.True(hf.SequenceEqual(got), $"{family}/{name}: ids\n{FamilyReferenceTests.Show(got)}\nHugging Face tokenizers\n{FamilyReferenceTests.Show(hf)}");
            if (!want.SequenceEqual(hf)) differing++;
        }
        oracle?.Dispose();
        Assert.True(oracle is null || differing > 0, $"{family}: transformers' ids equal tokenizer.json's in every case: check them against the reference again");
    }

    /// <summary>
    /// Whether transformers encodes with the tokenizer.json the model ships: make_tokenizer_refs.py leaves out
    /// transformers_ids where its tokenizer class encodes differently. transformers 5.17 builds LlamaTokenizer's own
    /// pipeline (Metaspace, no normalizer, no unk) over the vocab for Llama 2 and for DeepSeek V3 ("LlamaTokenizerFast"):
    /// for DeepSeek V3's byte-level vocab that loses every space and every character outside it (CJK, emoji), so
    /// those ids are not the model's and LongCtx keeps tokenizer.json's.
    /// </summary>
    private static bool TransformersEncodesAsTokenizerJson(string tokenizer)
    {
        var (cases, _, _) = TokenizerFixtures.ReadFullReference(Path.Combine(TokenizerFixtures.RepoRoot, "tests", "data", "tokenizers", tokenizer + ".json"));
        return cases.Any(c => c.TransformersIds is not null);
    }

    /// <summary>Hugging Face tokenizers (Tokenizers.DotNet) on a tokenizer.json, without the BOS its post-processor adds.</summary>
    private sealed class ChatIdsOracle : IDisposable
    {
        private readonly Tokenizers.DotNet.Tokenizer _tok;
        private readonly uint[] _bos;

        public ChatIdsOracle(string dir)
        {
            _tok = new(vocabPath: Path.Combine(dir, "tokenizer.json"));
            _bos = _tok.Encode("");
        }

        public int[] Encode(string text)
        {
            uint[] ids = _tok.Encode(text);
            Assert.True(ids.AsSpan().StartsWith(_bos), $"the post-processor adds [{string.Join(",", _bos)}] other than as a prefix");
            return ids[_bos.Length..].Select(i => (int)i).ToArray();
        }

        public void Dispose() => _tok.Dispose();
    }

    /// <summary>Special tokens transformers takes from its tokenizer class's defaults, not from the model's files.</summary>
    private static readonly HashSet<(string Tokenizer, string Name)> ClassDefaults = [("gemma3", "mask_token")];

    [Theory]
    [MemberData(nameof(Families))]
    public void SpecialTokensAreReadAsTransformersReadsThem(string family)
    {
        var r = Reference(family);
        string tokenizer = r["tokenizer"]!.GetValue<string>();
        var read = ChatTemplateFiles.SpecialTokens(TokenizerFixtures.FetchedDir(tokenizer));
        var expected = r["special_tokens"]!.AsObject()
            .Where(kv => !ClassDefaults.Contains((tokenizer, kv.Key)))
            .Select(kv => (kv.Key, kv.Value!.GetValue<string>()));
        Assert.Equal(expected.Order(), read.Select(kv => (kv.Key, (string)kv.Value!)).Order());
    }
}
