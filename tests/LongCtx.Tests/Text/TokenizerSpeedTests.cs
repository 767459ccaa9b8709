using System.Diagnostics;

namespace LongCtx.Tests.Text;

/// <summary>
/// Hostile text must not be quadratic: 100,000 characters with no whitespace are one pre-token, merged through a
/// priority queue. The bar is generous for a loaded 2-core CI machine (docs/ARCHITECTURE.md has the measured
/// figures); quadratic merging took 283 s here.
/// </summary>
public class TokenizerSpeedTests
{
    [Theory]
    [InlineData("llama2")]
    [InlineData("llama3")]
    [InlineData("qwen3")]
    [InlineData("gemma3")]
    [InlineData("deepseek_v3")]
    [InlineData("gptoss")]
    public void Hundred_thousand_characters_without_whitespace_encode_in_seconds(string family)
    {
        var tok = TokenizerFixtures.Family(family);
        var rng = new Random(5);
        string letters = string.Create(100_000, rng, (span, r) => { for (int i = 0; i < span.Length; i++) span[i] = (char)('a' + r.Next(26)); });
        tok.Encode(letters[..1000]);
        var clock = Stopwatch.StartNew();
        int[] ids = tok.Encode(letters);
        Assert.True(clock.Elapsed.TotalSeconds < 5, $"{family}: {clock.Elapsed.TotalSeconds:0.00} s for 100K characters");
        Assert.InRange(ids.Length, 20_000, 80_000);
        Assert.Equal(letters, tok.Decode(ids));
    }
}
