using LongCtx.Text;

namespace LongCtx.Tests.Text;

/// <summary>A tokenizer.json that is corrupt or uses what is not implemented: one line naming the file and the field or component.</summary>
public class BadTokenizerTests
{
    private static LongCtxException LoadError(string json)
    {
        string dir = Path.Combine(Path.GetTempPath(), "longctx-bad-tokenizer-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), json);
            var e = Assert.Throws<LongCtxException>(() => Tokenizer.Load(dir));
            Assert.StartsWith(Path.Combine(dir, "tokenizer.json") + ": ", e.Message);
            Assert.DoesNotContain('\n', e.Message);
            return e;
        }
        finally { Directory.Delete(dir, true); }
    }

    private static string Bpe(string vocab = """{"a": 0, "b": 1, "ab": 2}""", string merges = """["a b"]""") =>
        "{\"model\": {\"type\": \"BPE\", \"vocab\": " + vocab + ", \"merges\": " + merges + "}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"decoder\": {\"type\": \"ByteLevel\"}}";

    [Theory]
    [InlineData("{}", "no \"model\" object: not a Hugging Face tokenizer.json")]
    [InlineData("[]", "no \"model\" object")]
    [InlineData("""{"model": {"type": "BPE", "vocab": [], "merges": []}}""", "model.vocab: expected an object of token: id, got array")]
    [InlineData("""{"model": {"type": "WordPiece", "vocab": {}}}""", "model.type: model type 'WordPiece' is not supported (supported: BPE, WordLevel)")]
    public void Corrupt_or_unsupported_file_names_the_field(string json, string expected) =>
        Assert.Contains(expected, LoadError(json).Message);

    [Fact]
    public void Negative_id_names_the_token() =>
        Assert.EndsWith("model.vocab[\"b\"]: token id -5 is negative", LoadError(Bpe("""{"a": 0, "b": -5}""")).Message);

    [Fact]
    public void Integer_merges_name_the_entry() =>
        Assert.EndsWith("model.merges[1]: expected \"left right\" or [left, right], got the number 7", LoadError(Bpe(merges: """["a b", 7]""")).Message);

    [Fact]
    public void Added_token_without_id_is_named() =>
        Assert.EndsWith("added_tokens[0].id: expected a token id, got nothing",
            LoadError(Bpe().Replace("\"decoder\"", "\"added_tokens\": [{\"content\": \"<x>\"}], \"decoder\"")).Message);

    [Theory]
    [InlineData("\"normalizer\": {\"type\": \"Precompiled\", \"precompiled_charsmap\": \"\"}", "normalizer: normalizer type 'Precompiled' is not supported")]
    [InlineData("\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFC\"}, {\"type\": \"BertNormalizer\"}]}", "normalizer.normalizers[1]: normalizer type 'BertNormalizer'")]
    [InlineData("\"post_processor\": {\"type\": \"Weird\"}", "post_processor: post_processor type 'Weird' is not supported")]
    [InlineData("\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"ByteLevel\"}, {\"type\": \"Digits\"}]}", "pre_tokenizer.pretokenizers[0]: ByteLevel before another pre-tokenizer is not supported")]
    [InlineData("\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(unclosed\"}, \"behavior\": \"Isolated\"}", "pre_tokenizer.pattern.Regex: the regex cannot be compiled")]
    [InlineData("\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": \"Sideways\"}", "pre_tokenizer.behavior: behavior 'Sideways' is not one of")]
    public void Unsupported_component_is_named(string part, string expected) =>
        Assert.Contains(expected, LoadError(Bpe().Replace("\"pre_tokenizer\": {\"type\": \"ByteLevel\"}", part.StartsWith("\"pre_tokenizer\"") ? part : "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, " + part)).Message);

    [Fact]
    public void Missing_tokenizer_names_the_directory()
    {
        string dir = Path.Combine(Path.GetTempPath(), "longctx-no-tokenizer-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var e = Assert.Throws<LongCtxException>(() => Tokenizer.Load(dir));
            Assert.Equal($"tokenizer.json not found in DIR: {dir}", e.Message);
        }
        finally { Directory.Delete(dir); }
    }

    [Fact]
    public void A_path_that_does_not_exist_is_named()
    {
        string path = Path.Combine(Path.GetTempPath(), "longctx-no-such-tokenizer-" + Guid.NewGuid().ToString("N"));
        var e = Assert.Throws<LongCtxException>(() => Tokenizer.Load(path));
        Assert.StartsWith($"tokenizer {path} does not exist", e.Message);
    }
}
