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
/// Under tensor parallelism a rank's KV rows are its heads' columns of the reference's (matched at their offset), and
/// a row-parallel rank's input (o, down; a weight named "…[:, a:b]") is its columns of the reference row, quantised over
/// those columns alone (<see cref="MatchSlice"/>).
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
    // Row-parallel slices: the largest scale any rank's slice of a reference row got, by (site, row).
    private readonly Dictionary<(string Site, int Row), float> _sliceScales = [];

    /// <summary>
    /// Over the rows row-parallel ranks quantised: how far the largest of a row's slice scales is from the whole row's
    /// (relative). Per-token scales grow with the amax, so the slice that holds the row's amax has the row's scale.
    /// </summary>
    public double MaxSliceScaleError => _sliceScales.Count == 0 ? double.NaN
        : _sliceScales.Max(e => Math.Abs(e.Value - fixture.Sites[e.Key.Site].Scales[e.Key.Row]) / (double)fixture.Sites[e.Key.Site].Scales[e.Key.Row]);
    public int SliceRows => _sliceScales.Count;

    public void Activations(string weight, ReadOnlySpan<float> x, int rows, Span<byte> codes, Span<float> scales)
    {
        string site = SiteOf(weight);
        lock (_lock)
        {
            if (InputColumnStart(weight) is int start) MatchSlice(site, start, x, rows, codes, scales);
            else Match([site], x, rows, codes, scales, null);
        }
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
            var (site, refRow, offset) = Nearest(sites, codes.Slice(r * k, k));
            var reference = fixture.Sites[site];
            int perRow = reference.ScalesPerRow; // the same scheme on both sides: 0 (static), 1 (per token) or k / 128
            SitesSeen.Add(site);
            double rms = Math.Sqrt(row.ToArray().Sum(v => (double)v * v) / k);
            for (int j = 0; j < k; j++)
            {
                byte mine = codes[r * k + j], theirs = reference.Codes[refRow * reference.K + offset + j];
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
            if (substitute) reference.Codes.AsSpan(refRow * reference.K + offset, k).CopyTo(codes.Slice(r * k, k));
        }
    }

    // A row-parallel rank's input rows: columns [start, start + k) of reference rows, each with a scale of its own over
    // those columns. Codes made with another scale cannot be compared with the reference's, so the row is the one whose
    // dequantised values there are nearest; no slice's scale may exceed its row's. Substituted: the reference's codes
    // of those columns with the whole row's scale, which makes the ranks' partial sums add up to the reference's sum.
    private void MatchSlice(string site, int start, ReadOnlySpan<float> x, int rows, Span<byte> codes, Span<float> scales)
    {
        var reference = fixture.Sites[site];
        int k = x.Length / rows, perRow = reference.ScalesPerRow;
        if (perRow > 1) throw new InvalidOperationException($"{site}: grouped inputs under tensor parallelism have no fixture (their groups would match whole)");
        SitesSeen.Add(site);
        for (int r = 0; r < rows; r++)
        {
            var row = x.Slice(r * k, k);
            int refRow = 0;
            double best = double.MaxValue;
            for (int candidate = 0; candidate < reference.Rows; candidate++)
            {
                double distance = 0;
                for (int j = 0; j < k; j++) distance += Math.Pow(row[j] - (double)reference.Value(candidate, start + j), 2);
                if (distance < best) (best, refRow) = (distance, candidate);
            }
            float theirs = reference.Scales[perRow == 0 ? 0 : refRow];
            float mine = scales[perRow == 0 ? 0 : r];
            if (perRow == 0) MaxScaleError = Math.Max(MaxScaleError, Math.Abs(mine - theirs) / (double)theirs);
            else
            {
                _sliceScales[(site, refRow)] = Math.Max(_sliceScales.GetValueOrDefault((site, refRow)), mine);
                if (mine > theirs * (1 + 1e-6) && Mismatches.Count < 20)
                    Mismatches.Add($"{site} row {refRow} columns from {start}: a slice's scale {mine} above the whole row's {theirs}");
                if (substitute) scales[r] = theirs;
            }
            if (substitute) reference.Codes.AsSpan(refRow * reference.K + start, k).CopyTo(codes.Slice(r * k, k));
        }
    }

    /// <summary>"…down_proj.weight[:, 64:128]" (a row-parallel rank's input columns) → 64; null for a whole input.</summary>
    private static int? InputColumnStart(string weight)
    {
        int at = weight.IndexOf("[:, ", StringComparison.Ordinal);
        return at < 0 ? null : int.Parse(weight[(at + 4)..weight.IndexOf(':', at + 4)], System.Globalization.CultureInfo.InvariantCulture);
    }

    // Codes in the order of their values (±0 both 0), so neighbouring values are one apart.
    private static int Ordinal(byte code) => (code & 0x80) != 0 ? -(code & 0x7F) : code;

    // The reference row (of any candidate site) whose codes agree with the engine's in the most places: the right one
    // agrees everywhere but at near-ties, any other is a different token's row (dequantised values would mislead where
    // a row saturates). A shorter row (a tensor-parallel rank's KV heads) is compared at each offset it could sit at.
    private (string Site, int Row, int Offset) Nearest(string[] sites, ReadOnlySpan<byte> codes)
    {
        (string, int, int) best = default;
        int bestAgreement = -1, k = codes.Length;
        foreach (string site in sites)
        {
            var s = fixture.Sites[site];
            if (s.K % k != 0) continue;
            for (int r = 0; r < s.Rows; r++)
                for (int offset = 0; offset < s.K; offset += k)
                {
                    int agreement = 0;
                    for (int j = 0; j < k; j++) agreement += s.Codes[r * s.K + offset + j] == codes[j] ? 1 : 0;
                    if (agreement > bestAgreement) (bestAgreement, best) = (agreement, (site, r, offset));
                }
        }
        if (best.Item1 is null) throw new InvalidOperationException($"{fixture.Name}: no reference site of row length {codes.Length} among {string.Join(", ", sites)}");
        return best;
    }

    /// <summary>model.layers.3.mlp.up_proj.weight → model.layers.3.mlp.gate_up_input: q/k/v and gate/up share their input.</summary>
    public static string SiteOf(string weight)
    {
        int slice = weight.IndexOf('[', StringComparison.Ordinal); // a tensor-parallel rank's share: "…q_proj.weight[0:128]"
        var parts = (slice < 0 ? weight : weight[..slice])[..^".weight".Length].Split('.');
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
