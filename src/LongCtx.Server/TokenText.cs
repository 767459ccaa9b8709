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
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public byte[] Bytes(int id) => tokenizer.TokenBytes(id, skipSpecial: false).ToArray();

    public string Display(int id) => Display(Bytes(id));

    public static string Display(byte[] bytes)
    {
        try { return StrictUtf8.GetString(bytes); }
        catch (DecoderFallbackException) { return "bytes:" + string.Concat(bytes.Select(b => $"\\x{b:x2}")); }
    }
}
