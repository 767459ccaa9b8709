using LongCtx.Text;

namespace LongCtx.Tests.Text;

public class SpecialTokenTests
{
    [Fact]
    public void Llama3_special_tokens_encode_to_their_ids()
    {
        var tok = TokenizerFixtures.Llama3;
        int[] ids = tok.Encode("<|begin_of_text|>hi<|eot_id|>");
        Assert.Equal([128000, .. tok.Encode("hi"), 128009], ids);
        Assert.Equal("<|begin_of_text|>hi<|eot_id|>", tok.Decode(ids));
        Assert.Equal("hi", tok.Decode(ids, skipSpecialTokens: true));
        Assert.Equal(128009, tok.TokenToId("<|eot_id|>"));
        Assert.Equal("<|eot_id|>", tok.IdToToken(128009));
        Assert.Equal("Hello", tok.IdToToken(9906));
        Assert.Equal(128256, tok.VocabSize);
        Assert.Null(tok.TokenToId("no such token"));
        Assert.Null(tok.IdToToken(-1));
    }

    /// <summary>
    /// What add_special_tokens puts around a prompt, as transformers 5 does: tokenizer_config.json's add_bos_token /
    /// add_eos_token when it sets either, else the tokenizer.json post-processor. The npm Llama 3 copy predates the
    /// TemplateProcessing Meta added later and adds nothing; Llama 3.1's adds BOS; DeepSeek V3's config asks for BOS
    /// though its tokenizer.json post-processor alone would not.
    /// </summary>
    [Theory]
    [InlineData("llama2", new[] { 1 }, new[] { 2 })]
    [InlineData("llama3", new int[0], new[] { 128001 })]
    [InlineData("llama3_1", new[] { 128000 }, new[] { 128009 })]
    [InlineData("qwen3", new int[0], new[] { 151645 })]
    [InlineData("gemma3", new[] { 2 }, new[] { 106 })]
    [InlineData("deepseek_v3", new[] { 0 }, new[] { 1 })]
    [InlineData("gptoss", new int[0], new[] { 200002 })]
    public void Prompt_special_tokens_and_eos_follow_transformers(string family, int[] prefix, int[] eos)
    {
        var tok = TokenizerFixtures.Family(family);
        Assert.Equal([.. prefix, .. tok.Encode("Hello world")], tok.Encode("Hello world", addSpecialTokens: true));
        Assert.Equal(eos, tok.EosTokenIds);
        Assert.Equal(prefix.Length == 0 ? null : prefix[0], prefix.Length == 0 ? null : tok.BosTokenId);
    }

    [Fact]
    public void Qwen3_has_no_bos_and_added_tokens_split_the_text()
    {
        var tok = TokenizerFixtures.Qwen3;
        Assert.Null(tok.BosTokenId);
        int imStart = tok.TokenToId("<|im_start|>")!.Value;
        Assert.Equal([imStart, .. tok.Encode("user\nhi")], tok.Encode("<|im_start|>user\nhi"));
    }

    /// <summary>The retrieval model's kind of tokenizer (issue #34): WordLevel over "▁" words, Metaspace both ways.</summary>
    [Fact]
    public void WordLevel_with_metaspace_encodes_words_and_decodes_back()
    {
        var tok = Tokenizer.Load(TokenizerFixtures.SyntheticDir("wordlevel"));
        Assert.Equal([4, 5, 6, 1, 2], tok.Encode("the key is K k417"));
        Assert.Equal("the key is K k417", tok.Decode([4, 5, 6, 1, 2]));
        Assert.Equal([1, 0, 3], tok.Encode("K k999 v23")); // an unknown word is [UNK]
        Assert.Equal(2, tok.TokenToId("▁k417"));
        Assert.Equal(" k417", System.Text.Encoding.UTF8.GetString(tok.TokenBytes(2, skipSpecial: false)));
    }
}
