using System.Globalization;
using System.Text;

namespace LongCtx.Text.Jinja;

/// <summary>
/// Python's datetime.strftime on a local time without a zone (what transformers' strftime_now formats), in the
/// C locale, with glibc's extensions (%e, %k, %l, and '-' for no padding as in %-d).
/// </summary>
internal static class Strftime
{
    private static readonly string[] Days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
    private static readonly string[] Months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

    public static string Format(DateTime t, string format)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length)
            {
                sb.Append(format[i]);
                continue;
            }
            char c = format[++i];
            bool noPad = c == '-' && i + 1 < format.Length;
            if (noPad) c = format[++i];
            string Num(int value, int width, char pad = '0') =>
                noPad ? value.ToString(CultureInfo.InvariantCulture) : value.ToString(CultureInfo.InvariantCulture).PadLeft(width, pad);
            int hour12 = t.Hour % 12 == 0 ? 12 : t.Hour % 12;
            sb.Append(c switch
            {
                'a' => Days[(int)t.DayOfWeek][..3],
                'A' => Days[(int)t.DayOfWeek],
                'w' => ((int)t.DayOfWeek).ToString(CultureInfo.InvariantCulture),
                'u' => (t.DayOfWeek == DayOfWeek.Sunday ? 7 : (int)t.DayOfWeek).ToString(CultureInfo.InvariantCulture),
                'd' => Num(t.Day, 2),
                'e' => Num(t.Day, 2, ' '),
                'b' or 'h' => Months[t.Month - 1][..3],
                'B' => Months[t.Month - 1],
                'm' => Num(t.Month, 2),
                'y' => Num(t.Year % 100, 2),
                'Y' => t.Year.ToString(CultureInfo.InvariantCulture),
                'C' => Num(t.Year / 100, 2),
                'H' => Num(t.Hour, 2),
                'k' => Num(t.Hour, 2, ' '),
                'I' => Num(hour12, 2),
                'l' => Num(hour12, 2, ' '),
                'p' => t.Hour < 12 ? "AM" : "PM",
                'M' => Num(t.Minute, 2),
                'S' => Num(t.Second, 2),
                'f' => ((t.Ticks % TimeSpan.TicksPerSecond) / 10).ToString("000000", CultureInfo.InvariantCulture),
                'j' => Num(t.DayOfYear, 3),
                'U' => Num((t.DayOfYear + 6 - (int)t.DayOfWeek) / 7, 2),
                'W' => Num((t.DayOfYear + 6 - ((int)t.DayOfWeek + 6) % 7) / 7, 2),
                'V' => Num(ISOWeek.GetWeekOfYear(t), 2),
                'G' => ISOWeek.GetYear(t).ToString(CultureInfo.InvariantCulture),
                'D' => Format(t, "%m/%d/%y"),
                'F' => Format(t, "%Y-%m-%d"),
                'T' => Format(t, "%H:%M:%S"),
                'R' => Format(t, "%H:%M"),
                'c' => Format(t, "%a %b %e %H:%M:%S %Y"),
                'x' => Format(t, "%m/%d/%y"),
                'X' => Format(t, "%H:%M:%S"),
                's' => new DateTimeOffset(DateTime.SpecifyKind(t, DateTimeKind.Local)).ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture),
                'n' => "\n",
                't' => "\t",
                'z' or 'Z' => "",
                '%' => "%",
                _ => "%" + (noPad ? "-" : "") + c,
            });
        }
        return sb.ToString();
    }
}
