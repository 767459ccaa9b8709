using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LongCtx.Planning;

/// <summary>
/// The calibration file `bench --calibrate FILE` writes and `plan --calibration FILE` and `--strategy auto` read: a
/// <see cref="DeviceProfile"/> as JSON. Rates are TFLOP/s over rows ([rows, tflops] pairs), bandwidths GB/s, latencies µs.
/// </summary>
public static class CalibrationFile
{
    public const string Format = "longctx-calibration-1";

    public static JsonObject ToJson(DeviceProfile d)
    {
        static JsonArray Curve(RateCurve c) => new(c.Points.Select(p => (JsonNode)new JsonArray(p.Size, Math.Round(p.Rate / 1e12, 4))).ToArray());
        static JsonObject LinkJson(Link l) => new() { ["gbps"] = Math.Round(l.BytesPerSecond / 1e9, 6), ["latency_us"] = Math.Round(l.LatencySeconds * 1e6, 3) };
        var o = new JsonObject
        {
            ["format"] = Format,
            ["device"] = d.Name,
            ["activation_bytes"] = d.ActivationBytes,
            ["memory_bytes"] = d.MemoryBytes,
            ["reserved_bytes"] = d.ReservedBytes,
            ["memory_gbps"] = Math.Round(d.MemoryBytesPerSecond / 1e9, 3),
            ["gemm_tflops"] = new JsonObject(d.GemmFlops.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)Curve(kv.Value)))),
            ["attention_tflops"] = new JsonObject { ["causal"] = Curve(d.CausalAttentionFlops), ["full"] = Curve(d.FullAttentionFlops) },
            ["decode_layer_us"] = Math.Round(d.DecodeLayerSeconds * 1e6, 3),
        };
        if (d.IntraNode is { } node) o["intra_node"] = LinkJson(node);
        if (d.RingLink is { } ring) o["ring"] = LinkJson(ring);
        return o;
    }

    public static void Write(DeviceProfile d, string path) =>
        File.WriteAllText(path, ToJson(d).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");

    public static DeviceProfile Read(string path)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SettingException(Setting.Calibration, $"cannot be read ({e.Message})", path);
        }
        JsonNode? root;
        try { root = JsonNode.Parse(text); }
        catch (JsonException e) { throw new SettingException(Setting.Calibration, $"is not JSON ({e.Message})", path); }
        var r = new Reader(path, root as JsonObject ?? throw new SettingException(Setting.Calibration, "is not a JSON object", path));
        if (r.String("format") != Format) throw new SettingException(Setting.Calibration, $": format is not {Format} (another version of longctx wrote it)", path);
        var gemm = r.Object("gemm_tflops");
        var attention = r.Object("attention_tflops");
        return new DeviceProfile(
            Name: r.String("device"),
            Source: $"calibration file {path}",
            ActivationBytes: (int)r.Number("activation_bytes", min: 1),
            MemoryBytes: r.Number("memory_bytes", min: 1),
            ReservedBytes: r.Number("reserved_bytes", min: 0),
            MemoryBytesPerSecond: r.Number("memory_gbps", min: 1e-9) * 1e9,
            GemmFlops: gemm.Select(kv => (kv.Key, Curve: r.Curve(kv.Value, $"gemm_tflops.{kv.Key}")))
                .ToDictionary(x => x.Key, x => x.Curve),
            CausalAttentionFlops: r.Curve(attention["causal"], "attention_tflops.causal"),
            FullAttentionFlops: r.Curve(attention["full"], "attention_tflops.full"),
            IntraNode: r.OptionalLink("intra_node"),
            DecodeLayerSeconds: r.Number("decode_layer_us", min: 0) * 1e-6,
            RingLink: r.OptionalLink("ring"));
    }

    /// <summary>Reads fields of the root object; every error names the file and the field.</summary>
    private sealed class Reader(string path, JsonObject root)
    {
        private SettingException Bad(string field, string expected) => new(Setting.Calibration, $": {field} {expected}", path);

        public string String(string field) =>
            root[field] is JsonValue v && v.TryGetValue(out string? s) ? s : throw Bad(field, "must be a string");

        public double Number(string field, double min) => Number(root[field], field, min);

        private double Number(JsonNode? node, string field, double min) =>
            node is JsonValue v && v.TryGetValue(out double d) && d >= min && !double.IsInfinity(d) ? d
                : throw Bad(field, $"must be a number of at least {min.ToString(CultureInfo.InvariantCulture)}");

        public JsonObject Object(string field) => root[field] as JsonObject ?? throw Bad(field, "must be an object");

        public RateCurve Curve(JsonNode? node, string field)
        {
            if (node is not JsonArray points || points.Count == 0) throw Bad(field, "must be a non-empty list of [rows, tflops] pairs");
            return new RateCurve(points.Select((p, i) => p is JsonArray { Count: 2 } pair
                ? ((long)Number(pair[0], $"{field}[{i}] rows", 1), Number(pair[1], $"{field}[{i}] tflops", 1e-12) * 1e12)
                : throw Bad($"{field}[{i}]", "must be a [rows, tflops] pair")), $"calibration file {path}: {field}");
        }

        public Link? OptionalLink(string field) => root[field] switch
        {
            null => null,
            JsonObject o => new Link(field == "ring" ? "calibrated" : "calibrated node link", Number(o["gbps"], $"{field}.gbps", 1e-12) * 1e9, Number(o["latency_us"], $"{field}.latency_us", 0) * 1e-6),
            _ => throw Bad(field, "must be an object with gbps and latency_us"),
        };
    }
}
