using LongCtx.Text;

namespace LongCtx.Tests.Text;

/// <summary>NFC/NFD/NFKC/NFKD from the embedded tables against Python's unicodedata (the tables' source) on the cases
/// that exercise each step: composition, Hangul, compatibility, canonical ordering, blocked marks, singletons.</summary>
public class UnicodeNormalizerTests
{
    [Theory]
    [InlineData("e\u0301", "\u00e9", "e\u0301", "\u00e9", "e\u0301")]
    [InlineData("\u1100\u1161\u11a8", "\uac01", "\u1100\u1161\u11a8", "\uac01", "\u1100\u1161\u11a8")]
    [InlineData("\uac01", "\uac01", "\u1100\u1161\u11a8", "\uac01", "\u1100\u1161\u11a8")]
    [InlineData("\ufb01\u2460\u00bd", "\ufb01\u2460\u00bd", "\ufb01\u2460\u00bd", "fi11\u20442", "fi11\u20442")]
    [InlineData("a\u0301\u0323", "\u1ea1\u0301", "a\u0323\u0301", "\u1ea1\u0301", "a\u0323\u0301")]
    [InlineData("\u1e0b\u0323", "\u1e0d\u0307", "d\u0323\u0307", "\u1e0d\u0307", "d\u0323\u0307")]
    [InlineData("\u212b\u2126", "\u00c5\u03a9", "A\u030a\u03a9", "\u00c5\u03a9", "A\u030a\u03a9")]
    [InlineData("q\u0307\u0323", "q\u0323\u0307", "q\u0323\u0307", "q\u0323\u0307", "q\u0323\u0307")]
    [InlineData("\u0ccb", "\u0ccb", "\u0cc6\u0cc2\u0cd5", "\u0ccb", "\u0cc6\u0cc2\u0cd5")]
    [InlineData("\u00c5\u030a", "\u00c5\u030a", "A\u030a\u030a", "\u00c5\u030a", "A\u030a\u030a")]
    [InlineData("na\u00efve caf\u00e9 \ud55c\uad6d\uc5b4 \ud835\udc00", "na\u00efve caf\u00e9 \ud55c\uad6d\uc5b4 \ud835\udc00",
        "nai\u0308ve cafe\u0301 \u1112\u1161\u11ab\u1100\u116e\u11a8\u110b\u1165 \ud835\udc00", "na\u00efve caf\u00e9 \ud55c\uad6d\uc5b4 A",
        "nai\u0308ve cafe\u0301 \u1112\u1161\u11ab\u1100\u116e\u11a8\u110b\u1165 A")]
    public void Matches_python_unicodedata(string s, string nfc, string nfd, string nfkc, string nfkd)
    {
        Assert.Equal(nfc, UnicodeNormalizer.Normalize(s, compose: true, compat: false));
        Assert.Equal(nfd, UnicodeNormalizer.Normalize(s, compose: false, compat: false));
        Assert.Equal(nfkc, UnicodeNormalizer.Normalize(s, compose: true, compat: true));
        Assert.Equal(nfkd, UnicodeNormalizer.Normalize(s, compose: false, compat: true));
        Assert.Equal("14.0.0", UnicodeNormalizer.UnicodeVersion);
    }
}
