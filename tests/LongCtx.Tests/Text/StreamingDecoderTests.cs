using System.Text;

namespace LongCtx.Tests.Text;

public class StreamingDecoderTests
{
    private const string MultiByte = "emoji 🚢🌊⚓👩‍👩‍👧‍👦 日本語のテキスト 中文文本 한국어 𠜎𠜱𠝹 naïve café ᚠᛇᚻ Ελληνικά 🤖✨ ok";

    [Fact]
    public void Streaming_valid_text_matches_decode_and_never_splits_a_character()
    {
        var tok = TokenizerFixtures.Llama3;
        var rng = new Random(1234);
        var words = MultiByte.Split(' ');
        for (int round = 0; round < 50; round++)
        {
            string text = string.Join(" ", Enumerable.Range(0, 12).Select(_ => words[rng.Next(words.Length)]));
            int[] ids = tok.Encode(text);
            var dec = tok.CreateStreamingDecoder();
            var sb = new StringBuilder();
            foreach (int id in ids)
            {
                string s = dec.Push(id);
                AssertWellFormed(s);
                sb.Append(s);
            }
            string rest = dec.Flush();
            Assert.Equal("", rest);
            sb.Append(rest);
            Assert.Equal(tok.Decode(ids), sb.ToString());
            Assert.Equal(text, sb.ToString());
        }
    }

    [Fact]
    public void Streaming_random_ids_concatenate_to_decode()
    {
        var tok = TokenizerFixtures.Llama3;
        var rng = new Random(99);
        // Byte tokens of multi-byte characters cut anywhere, mixed with whole tokens and specials.
        int[] pool = tok.Encode(MultiByte).Concat([128000, 128009, 220, 9906]).ToArray();
        for (int round = 0; round < 200; round++)
        {
            int[] ids = Enumerable.Range(0, rng.Next(1, 30))
                .Select(_ => rng.Next(4) == 0 ? rng.Next(tok.VocabSize) : pool[rng.Next(pool.Length)]).ToArray();
            var dec = tok.CreateStreamingDecoder(skipSpecialTokens: round % 2 == 0);
            var sb = new StringBuilder();
            foreach (int id in ids)
            {
                string s = dec.Push(id);
                AssertNoLoneSurrogate(s);
                sb.Append(s);
            }
            sb.Append(dec.Flush());
            Assert.Equal(tok.Decode(ids, skipSpecialTokens: round % 2 == 0), sb.ToString());
        }
    }

    [Fact]
    public void Incomplete_character_waits_then_flush_replaces_it()
    {
        var tok = TokenizerFixtures.Llama3;
        int[] ids = tok.Encode("🚢");
        Assert.True(ids.Length > 1, "the ship emoji should need several byte tokens");
        var dec = tok.CreateStreamingDecoder();
        Assert.Equal("", dec.Push(ids[0]));
        Assert.Equal("\uFFFD", dec.Flush());
    }

    /// <summary>SentencePiece-style decoders (Replace/ByteFallback/Fuse/Strip, Metaspace): text out as characters complete, the same in the end.</summary>
    [Theory]
    [InlineData("llama2")]
    [InlineData("gemma3")]
    [InlineData("deepseek_v3")]
    public void Streaming_matches_decode_for_every_decoder_kind(string family)
    {
        var tok = TokenizerFixtures.Family(family);
        var rng = new Random(family.Length);
        var words = MultiByte.Split(' ');
        for (int round = 0; round < 30; round++)
        {
            string text = string.Join(rng.Next(3) == 0 ? "  " : " ", Enumerable.Range(0, 10).Select(_ => words[rng.Next(words.Length)]));
            int[] ids = tok.Encode(text);
            var dec = tok.CreateStreamingDecoder();
            var sb = new StringBuilder();
            int pieces = 0;
            foreach (int id in ids)
            {
                string s = dec.Push(id);
                AssertWellFormed(s);
                pieces += s.Length > 0 ? 1 : 0;
                sb.Append(s);
            }
            Assert.Equal("", dec.Flush());
            Assert.Equal(tok.Decode(ids), sb.ToString());
            Assert.Equal(text, sb.ToString());
            Assert.True(pieces > 5, $"{family}: text should come out as it completes, came in {pieces} pieces");
        }
    }

    [Fact]
    public void Byte_fallback_emoji_waits_for_its_last_byte()
    {
        var tok = TokenizerFixtures.Family("llama2");
        int[] ids = tok.Encode("a🚢");
        var dec = tok.CreateStreamingDecoder();
        var outs = ids.Select(dec.Push).ToArray();
        Assert.Equal(["a", "", "", "", "🚢"], outs); // ▁a, then <0xF0> <0x9F> <0x9A> <0xA2>
    }

    private static void AssertWellFormed(string s)
    {
        Assert.DoesNotContain('\uFFFD', s);
        AssertNoLoneSurrogate(s);
    }

    private static void AssertNoLoneSurrogate(string s)
    {
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) { i++; continue; }
            Assert.False(char.IsSurrogate(s[i]), $"unpaired surrogate at {i} in output chunk");
        }
    }
}
