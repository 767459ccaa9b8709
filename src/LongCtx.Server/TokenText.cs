using System.Text;
using LongCtx.Text;

namespace LongCtx.Server;

/// <summary>
/// A token as logprobs show it: its UTF-8 bytes, and its text, or OpenAI's "bytes:\xe2\x80" when the bytes
/// are only part of a character (byte-level BPE splits multi-byte characters across tokens).
/// Special tokens show as their names ("&lt;|eot_id|&gt;"). Thread-safe.
/// </summary>
internal sealed class TokenText(Tokenizer tokenizer)
{
    /// <summary>GPT-2's byte-level alphabet reversed: the byte each character of a BPE token's string stands for.</summary>
    private static readonly Dictionary<char, byte> ByteOfChar = ByteLevelAlphabet();
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public byte[] Bytes(int id)
    {
        string text = tokenizer.Decode([id]);
        if (!text.Contains('\uFFFD')) return Encoding.UTF8.GetBytes(text);
        // Not a whole character: the decode replaced the bytes, so read them from the token's byte-level string.
        string? token = tokenizer.IdToToken(id);
        return token is not null && token.All(ByteOfChar.ContainsKey) ? token.Select(c => ByteOfChar[c]).ToArray() : Encoding.UTF8.GetBytes(text);
    }

    public string Display(int id) => Display(Bytes(id));

    public static string Display(byte[] bytes)
    {
        try { return StrictUtf8.GetString(bytes); }
        catch (DecoderFallbackException) { return "bytes:" + string.Concat(bytes.Select(b => $"\\x{b:x2}")); }
    }

    private static Dictionary<char, byte> ByteLevelAlphabet()
    {
        var map = new Dictionary<char, byte>();
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= 33 and <= 126 or >= 161 and <= 172 or >= 174 and <= 255;
            map[(char)(printable ? b : next++)] = (byte)b;
        }
        return map;
    }
}
