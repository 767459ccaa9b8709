using System.Text;
using LongCtx.Text;

namespace LongCtx.Tests.Text;

/// <summary>
/// Random and hostile strings, encoded and decoded here and by Hugging Face's Rust `tokenizers` 0.22.2 (the
/// Tokenizers.DotNet package), which must agree. Its Encode adds the tokenizer.json post-processor's special
/// tokens and its Decode skips special tokens: the template each file adds is part of the case.
/// </summary>
public class TokenizerOracleTests
{
    private const string Alphabet = "aAbZsStTrReEvVmMlLdD'''   \t\r\n\n\u00a0\u3000\u2003015٣½.,-_()!?\"éü日本ёΩ\u0301#@▁<>|/🚢👩\u200d𠜎ก्ा\u0001\u007fﬁ①Ⅻ";

    private static readonly string[] Snippets = ["<s>", "</s>", "<|eot_id|>", "<|im_start|>", "<bos>", "<end_of_turn>", "<unk>", "<0x41>", "  ", "▁▁",
        "<|endoftext|>", "<｜end▁of▁sentence｜>", "<tool>", "<r>", "<l>", "word", "hello world", " K", " k417", " v23", "the ", "\r\n", "😀👍🏽"];

    private static string RandomText(Random rng, int maxLength)
    {
        var sb = new StringBuilder();
        int len = rng.Next(0, maxLength);
        while (sb.Length < len)
        {
            if (rng.Next(10) == 0) { sb.Append(Snippets[rng.Next(Snippets.Length)]); continue; }
            int k = rng.Next(Alphabet.Length);
            if (char.IsHighSurrogate(Alphabet[k])) sb.Append(Alphabet, k, 2);
            else if (!char.IsLowSurrogate(Alphabet[k])) sb.Append(Alphabet[k]);
        }
        return sb.ToString();
    }

    [Theory]
    [InlineData("llama2", new[] { 1 }, new int[0])]
    [InlineData("llama3", new int[0], new int[0])]
    [InlineData("llama3_1", new[] { 128000 }, new int[0])]
    [InlineData("qwen3", new int[0], new int[0])]
    [InlineData("gemma3", new[] { 2 }, new int[0])]
    [InlineData("deepseek_v3", new int[0], new int[0])]
    [InlineData("gptoss", new int[0], new int[0])]
    [InlineData("synthetic/wordlevel", new int[0], new int[0])]
    [InlineData("synthetic/added-flags", new int[0], new[] { 274 })]
    public void Agrees_with_huggingface_tokenizers(string name, int[] templatePrefix, int[] templateSuffix)
    {
        string dir = name.StartsWith("synthetic/", StringComparison.Ordinal) ? TokenizerFixtures.SyntheticDir(name["synthetic/".Length..]) : TokenizerFixtures.FetchedDir(name);
        var mine = name.StartsWith("synthetic/", StringComparison.Ordinal) ? Tokenizer.Load(dir) : TokenizerFixtures.Family(name);
        using var oracle = new Tokenizers.DotNet.Tokenizer(vocabPath: Path.Combine(dir, "tokenizer.json"));
        Assert.Equal([.. templatePrefix, .. templateSuffix], Ids(oracle.Encode("")));

        var rng = new Random(name.Length * 7919 + 17);
        var texts = Enumerable.Range(0, 400).Select(_ => RandomText(rng, 40))
            .Concat(Enumerable.Range(0, 40).Select(_ => RandomText(rng, 400)))
            .Concat([TokenizerFixtures.CorpusText(), TokenizerFixtures.NoWhitespaceText(3000), new string('a', 300), "", " ", "\n"]);
        var failures = new List<string>();
        foreach (string text in texts)
        {
            int[] want = Ids(oracle.Encode(text));
            int[] got = [.. templatePrefix, .. mine.Encode(text), .. templateSuffix];
            if (!want.SequenceEqual(got)) failures.Add($"encode {FamilyReferenceTests.Show(text)}: want {FamilyReferenceTests.Show(want)} got {FamilyReferenceTests.Show(got)}");
            string wantText = oracle.Decode(want.Select(i => (uint)i).ToArray()), gotText = mine.Decode(want, skipSpecialTokens: true);
            if (wantText != gotText) failures.Add($"decode {FamilyReferenceTests.Show(want)}: want {FamilyReferenceTests.Show(wantText)} got {FamilyReferenceTests.Show(gotText)}");
        }
        for (int i = 0; i < 300; i++)
        {
            int[] ids = Enumerable.Range(0, rng.Next(1, 12)).Select(_ => rng.Next(mine.VocabSize)).ToArray();
            string wantText = oracle.Decode(ids.Select(x => (uint)x).ToArray()), gotText = mine.Decode(ids, skipSpecialTokens: true);
            if (wantText != gotText) failures.Add($"decode {FamilyReferenceTests.Show(ids)}: want {FamilyReferenceTests.Show(wantText)} got {FamilyReferenceTests.Show(gotText)}");
        }
        Assert.True(failures.Count == 0, $"{name}: {failures.Count} differences\n{string.Join("\n", failures.Take(20))}");
    }

    private static int[] Ids(uint[] ids) => ids.Select(i => (int)i).ToArray();
}
