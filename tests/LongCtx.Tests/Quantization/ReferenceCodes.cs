using LongCtx.Backends.Cpu;
using LongCtx.Quantization;

namespace LongCtx.Tests.Quantization;

/// <summary>
/// The "activation codes" protocol of bench/reference/FP8.md as an <see cref="IQuantizationHook"/>: each row the
/// engine quantises is matched to the reference's row of the same site (the one whose codes agree most),
/// its codes and scales compared with the reference's, and then — with <see cref="Substitute"/> — replaced by them, so
/// the run goes on from exactly the reference's quantised values. A code may differ only where the engine's own scaled
/// value lies within <see cref="TieTolerance"/> (relative to the row) of the boundary between the two codes: there
/// float32 and float64 inputs may legitimately round apart. Thread-safe: ranks call it at once.
/// </summary>
internal sealed class ReferenceCodes(Fp8Fixture fixture, bool substitute) : IQuantizationHook
{
    public const double TieTolerance = 1e-5;
    private readonly object _lock = new();

    public bool Substitute => substitute;
    public long Compared { get; private set; }
    public long NearTieFlips { get; private set; }
    /// <summary>Codes that differ away from any rounding boundary, with where: each one is a defect.</summary>
    public List<string> Mismatches { get; } = [];
    public double MaxScaleError { get; private set; }
    public HashSet<string> SitesSeen { get; } = [];

    public void Activations(string weight, ReadOnlySpan<float> x, int rows, Span<byte> codes, Span<float> scales)
    {
        string site = SiteOf(weight);
        lock (_lock) Match([site], x, rows, codes, scales, null);
    }

    public void KvCache(ReadOnlySpan<float> x, int rows, float scale, Span<byte> codes)
    {
        // The cache stores K or V of some layer with that layer's static scale: the candidates are the sites of that scale.
        var sites = fixture.Sites.Where(s => s.Key.EndsWith("_cache", StringComparison.Ordinal) && s.Value.Scales[0] == scale).Select(s => s.Key).ToArray();
        if (sites.Length == 0) throw new InvalidOperationException($"{fixture.Name}: a KV cache quantisation with scale {scale}, which no reference site has");
        lock (_lock) Match(sites, x, rows, codes, [scale], scale);
    }

    private void Match(string[] sites, ReadOnlySpan<float> x, int rows, Span<byte> codes, Span<float> scales, float? staticScale)
    {
        int k = x.Length / rows;
        for (int r = 0; r < rows; r++)
        {
            var row = x.Slice(r * k, k);
            var (site, refRow) = Nearest(sites, codes.Slice(r * k, k));
            var reference = fixture.Sites[site];
            int perRow = reference.ScalesPerRow; // the same scheme on both sides: 0 (static), 1 (per token) or k / 128
            SitesSeen.Add(site);
            double rms = Math.Sqrt(row.ToArray().Sum(v => (double)v * v) / k);
            for (int j = 0; j < k; j++)
            {
                byte mine = codes[r * k + j], theirs = reference.Codes[refRow * reference.K + j];
                Compared++;
                if (mine == theirs) continue;
                float scale = perRow == 0 ? scales[0] : scales[r * perRow + j / (k / perRow)];
                float a = E4M3.Values[mine], b = E4M3.Values[theirs];
                double distance = Math.Abs(row[j] / (double)scale - (a + (double)b) / 2) * scale / (Math.Abs(row[j]) + rms);
                if (Math.Abs(Ordinal(mine) - Ordinal(theirs)) <= 1 && distance < TieTolerance) NearTieFlips++;
                else if (Mismatches.Count < 20)
                    Mismatches.Add($"{site} row {refRow} column {j}: code {mine:x2} ({a}), reference {theirs:x2} ({b}), x {row[j]}, scale {scale}, {distance:e2} from their boundary");
            }
            for (int s = 0; s < Math.Max(1, perRow); s++)
            {
                int at = perRow == 0 ? 0 : r * perRow + s;
                float theirs = reference.Scales[perRow == 0 ? 0 : refRow * perRow + s];
                MaxScaleError = Math.Max(MaxScaleError, Math.Abs(scales[at] - theirs) / (double)theirs);
                if (substitute && staticScale is null) scales[at] = theirs;
            }
            if (substitute) reference.Codes.AsSpan(refRow * reference.K, k).CopyTo(codes.Slice(r * k, k));
        }
    }

    // Codes in the order of their values (±0 both 0), so neighbouring values are one apart.
    private static int Ordinal(byte code) => (code & 0x80) != 0 ? -(code & 0x7F) : code;

    // The reference row (of any candidate site) whose codes agree with the engine's in the most places: the right one
    // agrees everywhere but at near-ties, any other is a different token's row (dequantised values would mislead where
    // a row saturates).
    private (string Site, int Row) Nearest(string[] sites, ReadOnlySpan<byte> codes)
    {
        (string, int) best = default;
        int bestAgreement = -1;
        foreach (string site in sites)
        {
            var s = fixture.Sites[site];
            if (s.K != codes.Length) continue;
            for (int r = 0; r < s.Rows; r++)
            {
                int agreement = 0;
                for (int j = 0; j < s.K; j++) agreement += s.Codes[r * s.K + j] == codes[j] ? 1 : 0;
                if (agreement > bestAgreement) (bestAgreement, best) = (agreement, (site, r));
            }
        }
        if (best.Item1 is null) throw new InvalidOperationException($"{fixture.Name}: no reference site of row length {codes.Length} among {string.Join(", ", sites)}");
        return best;
    }

    /// <summary>model.layers.3.mlp.up_proj.weight → model.layers.3.mlp.gate_up_input: q/k/v and gate/up share their input.</summary>
    public static string SiteOf(string weight)
    {
        var parts = weight[..^".weight".Length].Split('.');
        string site = parts[^1] switch
        {
            "q_proj" or "k_proj" or "v_proj" => "self_attn.qkv_input",
            "o_proj" => "self_attn.o_proj_input",
            "gate_proj" or "up_proj" => "mlp.gate_up_input",
            "down_proj" => "mlp.down_proj_input",
            _ => throw new ArgumentException(weight),
        };
        return string.Join('.', parts[..3]) + "." + site;
    }
}
