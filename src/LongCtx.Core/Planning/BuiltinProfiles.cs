namespace LongCtx.Planning;

/// <summary>
/// The devices and links `longctx plan` knows without a calibration file. Where every number comes from is in
/// docs/PERFORMANCE.md, "Planning: built-in profiles": h200 is this project's own H200 measurements (rates inside
/// the 8B prefill, not standalone kernels), h100 the same die at the same 700 W limit with H100 SXM memory, and
/// h100-500w the paper's power-limited H100s.
/// </summary>
public static class BuiltinProfiles
{
    public static IReadOnlyCollection<string> Names => Devices.Keys;

    public static DeviceProfile Device(string name) =>
        Devices.TryGetValue(name, out var make) ? make()
            : throw new SettingException(Setting.Gpu, $"is unknown: use {string.Join(", ", Devices.Keys)}, or a calibration file", name);

    /// <summary>nvlink (the device's own node link), rdma400, tcp100, calibrated (the calibration file's ring), or a number of GB/s per GPU.</summary>
    public static Link Link(string name, DeviceProfile device)
    {
        switch (name.ToLowerInvariant())
        {
            case "nvlink":
                return device.IntraNode ?? throw new SettingException(Setting.Link,
                    $": {device.Source} has no link between devices of a node (it was written on one rank): calibrate on 2 ranks or more, or name a link", name);
            case "rdma400": return Rdma400;
            case "tcp100": return Tcp100;
            case "calibrated":
                return device.RingLink ?? throw new SettingException(Setting.Link,
                    $": {device.Source} has no ring link (it was written on one rank): calibrate on 2 ranks or more, or name a link", name);
        }
        if (double.TryParse(name, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double gbps) && gbps > 0 && !double.IsInfinity(gbps))
            return new Link($"{gbps:0.###} GB/s", gbps * 1e9, 0);
        throw new SettingException(Setting.Link, "is unknown: use nvlink, rdma400, tcp100, calibrated, or GB/s per GPU (e.g. 3)", name);
    }

    // 400 Gb/s RDMA per GPU as the paper's Table 5 achieved it (a 16.4 MB pass-KV message in 627 µs), with the latency
    // of its small decode messages (Table 8).
    private static readonly Link Rdma400 = new("rdma400", 27.5e9, 32e-6);
    // 100 Gb/s TCP per GPU: about 3 GB/s achieved per rank (the paper, section 4.2.1).
    private static readonly Link Tcp100 = new("tcp100", 3e9, 50e-6);
    private static readonly Link NvLink = new("nvlink", 305e9, 29e-6);

    // GEMMs and attention inside the 8B prefill on one H200, by rows per call.
    private static readonly (long, double)[] H200Gemm = [(1024, 661e12), (8192, 677e12), (16384, 691e12), (32768, 702e12), (65536, 715e12), (131072, 690e12)];
    private static readonly (long, double)[] H200Attention = [(8192, 510e12), (16384, 535e12), (32768, 550e12), (65536, 569e12), (131072, 572e12)];
    // FP8 GEMMs are not measured here yet: the ratio to bf16 the paper's own TTFTs imply on its H100s.
    private const double Fp8OverBf16 = 1.35;

    private static readonly Dictionary<string, Func<DeviceProfile>> Devices = new(StringComparer.OrdinalIgnoreCase)
    {
        ["h200"] = () => Hopper("h200", memory: 150.1e9, bandwidth: 3.9e12),
        ["h100"] = () => Hopper("h100", memory: 85.0e9, bandwidth: 3.9e12 * 3.35 / 4.8),
        ["h100-500w"] = () =>
        {
            var h = Hopper("h100-500w", memory: 96.0e9, bandwidth: 3.9e12 * 2.4 / 4.8);
            var bf16 = new RateCurve(H200Gemm, "h100-500w bf16 GEMM").Scaled(800.0 / 989.4, "h100-500w bf16 GEMM");
            var attention = RateCurve.Flat(540e12, "h100-500w attention");
            return h with
            {
                GemmFlops = new Dictionary<string, RateCurve> { ["bf16"] = bf16, ["fp8"] = bf16.Scaled(Fp8OverBf16, "h100-500w fp8 GEMM") },
                CausalAttentionFlops = attention,
                FullAttentionFlops = attention,
            };
        },
    };

    private static DeviceProfile Hopper(string name, double memory, double bandwidth)
    {
        var bf16 = new RateCurve(H200Gemm, $"{name} bf16 GEMM");
        var attention = new RateCurve(H200Attention, $"{name} attention");
        return new DeviceProfile(name, $"built-in profile {name}", ActivationBytes: 2, MemoryBytes: memory, ReservedBytes: 2.0 * (1L << 30),
            MemoryBytesPerSecond: bandwidth,
            GemmFlops: new Dictionary<string, RateCurve> { ["bf16"] = bf16, ["fp8"] = bf16.Scaled(Fp8OverBf16, $"{name} fp8 GEMM") },
            CausalAttentionFlops: attention, FullAttentionFlops: attention, IntraNode: NvLink, DecodeLayerSeconds: 22e-6);
    }
}
