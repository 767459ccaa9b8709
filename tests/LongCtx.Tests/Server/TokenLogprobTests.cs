using LongCtx.Sampling;
using LongCtx.Server;
using LongCtx.Tests.Text;

namespace LongCtx.Tests.Server;

/// <summary>The log-softmax and most likely tokens of one position, and how tokens show in logprobs.</summary>
public class TokenLogprobTests
{
    [Fact]
    public void LogprobIsTheLogSoftmaxOfTheRawLogits()
    {
        float[] logits = [1f, 3f, -2f, 3f, 0.5f];
        double logSum = Math.Log(logits.Sum(x => Math.Exp(x)));
        var entry = TokenLogprob.Of(4, Logprobs.Of(logits, 4, top: 3), textOffset: 7);
        Assert.Equal(4, entry.Token);
        Assert.Equal(0.5 - logSum, entry.Logprob!.Value, 1e-6);
        Assert.Equal(7, entry.TextOffset);
        // Best first; of the tied 3s the lower id first, as greedy's argmax picks it.
        Assert.Equal([1, 3, 0], entry.Top!.Select(t => t.Token));
        Assert.Equal(3 - logSum, entry.Top![0].Logprob, 1e-6);
    }

    [Fact]
    public void TopIsCutToTheVocabularyAndMayBeEmpty()
    {
        float[] logits = [0f, 2f];
        Assert.Equal([1, 0], TokenLogprob.Of(0, Logprobs.Of(logits, 0, top: 20), textOffset: 0).Top!.Select(t => t.Token));
        Assert.Empty(TokenLogprob.Of(0, Logprobs.Of(logits, 0, top: 0), textOffset: 0).Top!);
    }

    [Fact]
    public void LargeLogitsDoNotOverflow()
    {
        float[] logits = [1000f, 1000f];
        Assert.Equal(-Math.Log(2), TokenLogprob.Of(1, Logprobs.Of(logits, 1, top: 1), textOffset: 0).Logprob!.Value, 1e-6);
    }

    [Fact]
    public void PromptEntriesStartWithNoLogprobAndUseTheRowBefore()
    {
        var tokenizer = TokenizerFixtures.Llama3;
        int[] prompt = [128000, .. tokenizer.Encode("Hello world")];
        int vocab = tokenizer.VocabSize;
        var logits = new float[prompt.Length * vocab];
        for (int i = 0; i < prompt.Length; i++) logits[i * vocab + (i * 7919) % vocab] = 5f;
        var positions = Enumerable.Range(0, prompt.Length - 1).Select(i => Logprobs.Of(logits.AsSpan(i * vocab, vocab), prompt[i + 1], 1)).ToArray();
        var entries = TokenLogprob.ForPrompt(positions, prompt, tokenizer);
        Assert.Null(entries[0].Logprob);
        Assert.Null(entries[0].Top);
        for (int i = 1; i < prompt.Length; i++)
        {
            Assert.Equal(Logprobs.Of(logits.AsSpan((i - 1) * vocab, vocab), prompt[i], 1).Logprob, entries[i].Logprob);
            Assert.Equal((i - 1) * 7919 % vocab, entries[i].Top![0].Token);
        }
        // The BOS token decodes to nothing: "Hello" starts the text too.
        Assert.Equal([0, 0, 5], entries.Select(e => e.TextOffset));
    }

    [Fact]
    public void PartOfACharacterShowsAsEscapedBytes()
    {
        Assert.Equal("bytes:\\xe2\\x80", TokenText.Display([0xE2, 0x80]));
        Assert.Equal("é", TokenText.Display([0xC3, 0xA9]));
        Assert.Equal("<|eot_id|>", new TokenText(TokenizerFixtures.Llama3).Display(TokenizerFixtures.Llama3.TokenToId("<|eot_id|>")!.Value));
    }
}
