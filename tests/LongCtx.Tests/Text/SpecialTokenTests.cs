using LongCtx;
using LongCtx.Text;

namespace LongCtx.Tests.Text;

public class SpecialTokenTests
{
    [Fact]
    public void Llama3_special_tokens_encode_to_their_ids()
    {
        var tok = TokenizerFixtures.Llama3;
        int[] ids = tok.Encode("<|begin_of_text|>hi<|eot_id|>");
        Assert.Equal(128000, ids[0]);
        Assert.Equal(128009, ids[^1]);
        Assert.Equal([128000, .. tok.Encode("hi"), 128009], ids);
        Assert.Equal("<|begin_of_text|>hi<|eot_id|>", tok.Decode(ids));
        Assert.Equal("hi", tok.Decode(ids, skipSpecialTokens: true));
    }

    [Fact]
    public void Llama3_add_special_tokens_prepends_bos()
    {
        var tok = TokenizerFixtures.Llama3;
        Assert.Equal(128000, tok.BosTokenId);
        Assert.Contains(128001, tok.EosTokenIds);
        Assert.Equal(128256, tok.VocabSize);
        Assert.Equal([128000, .. tok.Encode("Hello world")], tok.Encode("Hello world", addSpecialTokens: true));
        Assert.Equal(128009, tok.TokenToId("<|eot_id|>"));
        Assert.Equal("<|eot_id|>", tok.IdToToken(128009));
        Assert.Equal("Hello", tok.IdToToken(9906));
        Assert.Null(tok.TokenToId("no such token"));
        Assert.Null(tok.IdToToken(-1));
    }

    [Fact]
    public void Qwen3_has_no_bos_and_adds_nothing()
    {
        var tok = TokenizerFixtures.Qwen3;
        Assert.Null(tok.BosTokenId);
        Assert.Equal([tok.TokenToId("<|im_end|>")!.Value], tok.EosTokenIds);
        Assert.Equal(tok.Encode("Hello world"), tok.Encode("Hello world", addSpecialTokens: true));
        int imStart = tok.TokenToId("<|im_start|>")!.Value;
        Assert.Equal([imStart, .. tok.Encode("user\nhi")], tok.Encode("<|im_start|>user\nhi"));
    }

    [Fact]
    public void Missing_tokenizer_names_the_directory()
    {
        string dir = Path.Combine(Path.GetTempPath(), "longctx-no-tokenizer-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var e = Assert.Throws<LongCtxException>(() => Tokenizer.Load(dir));
            Assert.Contains("tokenizer.json not found", e.Message);
            Assert.Contains(dir, e.Message);
        }
        finally { Directory.Delete(dir); }
    }

    [Fact]
    public void Unsupported_model_type_is_named()
    {
        string dir = Path.Combine(Path.GetTempPath(), "longctx-wordpiece-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "tokenizer.json"), """{"model":{"type":"WordPiece","vocab":{}}}""");
            var e = Assert.Throws<LongCtxException>(() => Tokenizer.Load(dir));
            Assert.Contains("WordPiece", e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }
}
