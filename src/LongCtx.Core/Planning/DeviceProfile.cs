namespace LongCtx.Planning;

/// <summary>
/// A rate measured at several sizes (rows of a GEMM or of an attention call), read between them on a log
/// scale and held flat beyond the ends: a size outside the measured range is charged the nearest measured rate.
/// </summary>
public sealed class RateCurve
{
    public RateCurve(IEnumerable<(long Size, double Rate)> points, string what)
    {
        Points = points.OrderBy(p => p.Size).ToArray();
        if (Points.Count == 0) throw new LongCtxException($"{what}: no measurements");
        foreach (var (size, rate) in Points)
            if (size < 1 || !(rate > 0) || double.IsInfinity(rate)) throw new LongCtxException($"{what}: rate {rate} at size {size} must be positive and finite");
    }

    public IReadOnlyList<(long Size, double Rate)> Points { get; }

    public static RateCurve Flat(double rate, string what) => new([(1, rate)], what);

    public double At(double size)
    {
        var p = Points;
        if (size <= p[0].Size) return p[0].Rate;
        if (size >= p[^1].Size) return p[^1].Rate;
        int i = 1;
        while (p[i].Size < size) i++;
        double f = Math.Log(size / p[i - 1].Size) / Math.Log((double)p[i].Size / p[i - 1].Size);
        return p[i - 1].Rate + f * (p[i].Rate - p[i - 1].Rate);
    }

    public RateCurve Scaled(double factor, string what) => new(Points.Select(p => (p.Size, p.Rate * factor)), what);
}

/// <summary>A link between two ranks: a message of B bytes takes Latency + B / BytesPerSecond.</summary>
public sealed record Link(string Name, double BytesPerSecond, double LatencySeconds)
{
    public double Time(double bytes) => bytes <= 0 ? 0 : LatencySeconds + bytes / BytesPerSecond;

    public override string ToString() => $"{Name} ({BytesPerSecond / 1e9:0.###} GB/s, {LatencySeconds * 1e6:0.#} µs)";
}

/// <summary>
/// What one device (a GPU, or a CPU rank) does, as rates: GEMM FLOP/s by weight type over rows, attention FLOP/s
/// over query rows (causal calls and the unmasked blocks of ring steps), memory bandwidth (decode reads weights and
/// KV, elementwise kernels read and write activations), the link between devices of a node, and the fixed cost of
/// a decode step's layer. Built-in profiles (<see cref="BuiltinProfiles"/>) or a calibration file (<see cref="CalibrationFile"/>).
/// </summary>
public sealed record DeviceProfile(
    string Name,
    string Source,
    int ActivationBytes,
    double MemoryBytes,
    double ReservedBytes,
    double MemoryBytesPerSecond,
    IReadOnlyDictionary<string, RateCurve> GemmFlops,
    RateCurve CausalAttentionFlops,
    RateCurve FullAttentionFlops,
    Link? IntraNode,
    double DecodeLayerSeconds,
    Link? RingLink = null)
{
    /// <summary>The link between devices of a node (tensor-parallel all-reduces, rings inside a node).</summary>
    public Link Node => IntraNode ?? throw new SettingException(Setting.GpusPerNode,
        $"{Source} has no link between devices of a node (it was written on one rank): plan one device a node, or calibrate on 2 ranks or more");

    /// <summary>
    /// The pass-KV / pass-Q heuristic's inputs for `--strategy auto`: the attention rate of the largest ring blocks
    /// measured (long prompts are the ones the choice matters for) and the calibrated ring link, if there is one.
    /// </summary>
    public (double AttentionFlopsPerSecond, double? LinkBytesPerSecond) HeuristicRates() =>
        (FullAttentionFlops.Points[^1].Rate, RingLink?.BytesPerSecond);

    /// <summary>The GEMM rate of a weight type; a calibration without it cannot plan that type.</summary>
    public RateCurve Gemm(string type) =>
        GemmFlops.TryGetValue(type, out var curve) ? curve
            : throw new SettingException(Setting.Dtype, $"{Name} ({Source}) has no {type} GEMM rate: use {string.Join(" or ", GemmFlops.Keys)} weights, or a built-in GPU profile");
}
