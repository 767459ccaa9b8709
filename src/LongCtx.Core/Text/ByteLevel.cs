namespace LongCtx.Text;

/// <summary>
/// GPT-2's bytes_to_unicode table: every byte maps to a printable char so that BPE vocab strings are
/// plain text. Printable Latin-1 bytes map to themselves; the rest go to U+0100 upwards in byte order.
/// </summary>
internal static class ByteLevel
{
    public static readonly char[] ByteToChar = Build();

    /// <summary>Inverse of <see cref="ByteToChar"/>; -1 for chars that are not in the table.</summary>
    public static readonly short[] CharToByte = BuildInverse();

    private static char[] Build()
    {
        var map = new char[256];
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[b] = printable ? (char)b : (char)(256 + next++);
        }
        return map;
    }

    private static short[] BuildInverse()
    {
        var inv = new short[512];
        Array.Fill(inv, (short)-1);
        for (int b = 0; b < 256; b++) inv[ByteToChar[b]] = (short)b;
        return inv;
    }
}
