using System.Globalization;
using System.Text.Json.Nodes;
using System.Xml.Linq;
using LongCtx.ContextParallel;

namespace LongCtx.Cli;

/// <summary>
/// `bench --plot FILE.svg`: the points of a bench run (its --json object, or an earlier one read with --from) as a plain
/// SVG: time to first token against context on log-log axes, one line per strategy and rank count (projections dotted,
/// approximate strategies dashed), and beside it each profiled point's time split as a bar of 100%. Written by hand,
/// with no plotting library: the figure needs lines, markers, bars and text, and the trimmed GPU publish stays small.
/// </summary>
internal static class BenchPlot
{
    private static readonly XNamespace Svg = "http://www.w3.org/2000/svg";
    private static readonly string[] Palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
    private static readonly (string Key, string Label, string Color)[] SplitParts =
    [
        ("gemm", "GEMM", "#4e79a7"), ("attention", "attention", "#f28e2b"), ("communication", "communication not hidden", "#e15759"),
        ("kernels", "other kernels", "#76b7b2"), ("copy", "copies", "#59a14f"), ("other", "other", "#bab0ac"),
    ];

    private const int PanelWidth = 460, PanelHeight = 320, Margin = 60, LegendRow = 16, RightLabels = 90, Top = 60;

    private sealed record PlotPoint(string Series, string Strategy, bool Projection, int Context, double TtftSeconds, Dictionary<string, double>? Split);

    /// <summary>The SVG of a bench JSON object (<c>model</c>, <c>device</c>, <c>points</c>).</summary>
    public static string Render(JsonNode bench, string source)
    {
        var points = (bench["points"] as JsonArray ?? throw Bad(source, "no \"points\" array: not the output of bench --json"))
            .Select((p, i) => Point(p ?? throw Bad(source, $"points[{i}] is null"), source, i)).ToList();
        if (points.Count == 0) throw Bad(source, "\"points\" is empty: nothing to plot");
        var series = points.Select(p => p.Series).Distinct().ToList();
        var split = points.Where(p => p.Split is not null).ToList();
        int legendHeight = series.Count * LegendRow + 10;
        int width = Margin + PanelWidth + (split.Count > 0 ? Margin * 2 + PanelWidth + RightLabels : Margin);
        int height = Top + PanelHeight + Margin + legendHeight;

        var svg = new XElement(Svg + "svg", new XAttribute("width", width), new XAttribute("height", height),
            new XAttribute("viewBox", $"0 0 {width} {height}"), new XAttribute("font-family", "sans-serif"), new XAttribute("font-size", 12),
            new XElement(Svg + "rect", new XAttribute("width", width), new XAttribute("height", height), new XAttribute("fill", "white")),
            Text(Margin, 18, $"{bench["model"]?.GetValue<string>() ?? "?"}", anchor: "start", size: 13),
            Text(Margin, 34, $"{bench["device"]?.GetValue<string>() ?? "?"}", anchor: "start", size: 11, color: "#555"));
        svg.Add(TtftPanel(points, series, Margin, Top));
        if (split.Count > 0) svg.Add(SplitPanel(split, Margin * 3 + PanelWidth, Top));
        return new XDocument(svg).ToString(SaveOptions.None);
    }

    private static PlotPoint Point(JsonNode p, string source, int i)
    {
        try
        {
            string strategy = p["strategy"]!.GetValue<string>();
            int ranks = p["ranks"]!.GetValue<int>(), tensor = p["tensor_parallel"]?.GetValue<int>() ?? 1;
            bool projection = p["projection"] is not null;
            string where = projection ? $"rank {p["timed_rank"]?.GetValue<int>()} of {ranks} alone (projection)"
                : tensor > 1 ? $"{ranks}x{tensor} ranks" : ranks == 1 ? "1 rank" : $"{ranks} ranks";
            var split = p["time_split_ms"] is JsonObject s ? s.ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<double>()) : null;
            return new PlotPoint($"{strategy}, {where}", strategy, projection, p["context"]!.GetValue<int>(), p["ttft_ms"]!.GetValue<double>() / 1e3, split);
        }
        catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException)
        {
            throw Bad(source, $"points[{i}] lacks strategy, ranks, context or ttft_ms as bench --json writes them");
        }
    }

    private static XElement TtftPanel(List<PlotPoint> points, List<string> series, int left, int top)
    {
        var g = new XElement(Svg + "g");
        double xMin = Math.Log2(points.Min(p => p.Context)), xMax = Math.Log2(points.Max(p => p.Context));
        if (xMax - xMin < 1) (xMin, xMax) = (xMin - 0.5, xMax + 0.5);
        // A little room above and below the points; grid lines at 1, 2 and 5 of each decade in between.
        double yMin = Math.Log10(points.Min(p => p.TtftSeconds)) - 0.15, yMax = Math.Log10(points.Max(p => p.TtftSeconds)) + 0.15;
        double X(int context) => left + 10 + (Math.Log2(context) - xMin) / (xMax - xMin) * (PanelWidth - 20);
        double Y(double seconds) => top + PanelHeight - (Math.Log10(seconds) - yMin) / (yMax - yMin) * PanelHeight;

        g.Add(Line(left, top + PanelHeight, left + PanelWidth, top + PanelHeight, "#333"), Line(left, top, left, top + PanelHeight, "#333"));
        foreach (int context in points.Select(p => p.Context).Distinct().Order())
        {
            g.Add(Line(X(context), top, X(context), top + PanelHeight, "#eee"));
            g.Add(Text(X(context), top + PanelHeight + 16, Tokens(context)));
        }
        for (double decade = Math.Floor(yMin); decade <= yMax; decade++)
            foreach (double m in new[] { 1, 2, 5 })
            {
                double v = m * Math.Pow(10, decade);
                if (Math.Log10(v) < yMin || Math.Log10(v) > yMax) continue;
                g.Add(Line(left, Y(v), left + PanelWidth, Y(v), m == 1 ? "#ddd" : "#f3f3f3"));
                g.Add(Text(left - 6, Y(v) + 4, v.ToString("0.###", CultureInfo.InvariantCulture), anchor: "end"));
            }
        g.Add(Text(left + PanelWidth / 2.0, top + PanelHeight + 34, "context (tokens)"));
        g.Add(Text(left - 44, top + PanelHeight / 2.0, "time to first token (s)", rotate: true));

        for (int s = 0; s < series.Count; s++)
        {
            var ps = points.Where(p => p.Series == series[s]).OrderBy(p => p.Context).ToList();
            string color = Palette[s % Palette.Length];
            string? dash = ps[0].Projection ? "2,3" : StrategyNames.IsApproximate(ps[0].Strategy) ? "6,3" : null;
            var path = new XElement(Svg + "polyline", new XAttribute("fill", "none"), new XAttribute("stroke", color), new XAttribute("stroke-width", 2),
                new XAttribute("points", string.Join(" ", ps.Select(p => $"{F(X(p.Context))},{F(Y(p.TtftSeconds))}"))));
            if (dash is not null) path.Add(new XAttribute("stroke-dasharray", dash));
            g.Add(path);
            foreach (var p in ps)
                g.Add(new XElement(Svg + "circle", new XAttribute("cx", F(X(p.Context))), new XAttribute("cy", F(Y(p.TtftSeconds))), new XAttribute("r", 3.5),
                    new XAttribute("fill", color), new XElement(Svg + "title", $"{p.Series}, {Tokens(p.Context)}: {p.TtftSeconds:0.000} s")));
            double ly = top + PanelHeight + 52 + s * LegendRow;
            var key = Line(left, ly - 4, left + 24, ly - 4, color, width: 2);
            if (dash is not null) key.Add(new XAttribute("stroke-dasharray", dash));
            g.Add(key, Text(left + 30, ly, series[s], anchor: "start"));
        }
        return g;
    }

    private static XElement SplitPanel(List<PlotPoint> points, int left, int top)
    {
        var g = new XElement(Svg + "g");
        g.Add(Text(left, top - 6, "time split of the profiled prefills (rank 0's stream; its sum at the right)", anchor: "start"));
        double barHeight = Math.Min(22, (PanelHeight - 10.0) / points.Count - 6);
        int labelWidth = 170, barWidth = PanelWidth - labelWidth;
        for (int i = 0; i < points.Count; i++)
        {
            var p = points[i];
            double y = top + 6 + i * (barHeight + 6), x = left + labelWidth;
            double total = SplitParts.Sum(part => p.Split!.GetValueOrDefault(part.Key));
            g.Add(Text(left + labelWidth - 6, y + barHeight / 2 + 4, $"{Short(p)}, {Tokens(p.Context)}", anchor: "end", size: 11));
            foreach (var (key, label, color) in SplitParts)
            {
                double ms = p.Split!.GetValueOrDefault(key), w = total > 0 ? ms / total * barWidth : 0;
                if (w <= 0) continue;
                g.Add(new XElement(Svg + "rect", new XAttribute("x", F(x)), new XAttribute("y", F(y)), new XAttribute("width", F(w)), new XAttribute("height", F(barHeight)),
                    new XAttribute("fill", color), new XElement(Svg + "title", $"{label}: {ms:0} ms")));
                x += w;
            }
            g.Add(Text(left + PanelWidth + 4, y + barHeight / 2 + 4, $"{total / 1e3:0.00} s", anchor: "start", size: 11));
        }
        double ly = top + 6 + points.Count * (barHeight + 6) + 14;
        foreach (var (i, (_, label, color)) in SplitParts.Index())
        {
            double lx = left + (i % 3) * 170, row = ly + i / 3 * LegendRow;
            g.Add(new XElement(Svg + "rect", new XAttribute("x", F(lx)), new XAttribute("y", F(row - 10)), new XAttribute("width", 12), new XAttribute("height", 12),
                new XAttribute("fill", color)), Text(lx + 16, row, label, anchor: "start", size: 11));
        }
        return g;
    }

    private static string Short(PlotPoint p) => p.Series.Replace(" (projection)", " (proj.)", StringComparison.Ordinal);

    private static string Tokens(int context) => context switch
    {
        >= 1 << 20 when context % (1 << 20) == 0 => $"{context >> 20}M",
        >= 1 << 10 when context % (1 << 10) == 0 => $"{context >> 10}K",
        _ => context.ToString(CultureInfo.InvariantCulture),
    };

    private static string F(double v) => v.ToString("0.#", CultureInfo.InvariantCulture);

    private static XElement Line(double x1, double y1, double x2, double y2, string color, double width = 1) => new(Svg + "line",
        new XAttribute("x1", F(x1)), new XAttribute("y1", F(y1)), new XAttribute("x2", F(x2)), new XAttribute("y2", F(y2)),
        new XAttribute("stroke", color), new XAttribute("stroke-width", width));

    private static XElement Text(double x, double y, string text, string anchor = "middle", double size = 12, string color = "#222", bool rotate = false)
    {
        var e = new XElement(Svg + "text", new XAttribute("x", F(x)), new XAttribute("y", F(y)), new XAttribute("text-anchor", anchor),
            new XAttribute("font-size", size), new XAttribute("fill", color), text);
        if (rotate) e.Add(new XAttribute("transform", $"rotate(-90 {F(x)} {F(y)})"));
        return e;
    }

    private static LongCtxException Bad(string source, string problem) => new($"{source}: {problem}");
}
