using System.Text.RegularExpressions;

namespace LongCtx.Cli;

/// <summary>
/// The dense bf16 tensor-core peak of a GPU by product, for MFU: NVIDIA's datasheet figures, which are quoted with 2:4
/// sparsity, halved. A GPU not in the table has no MFU ("unknown"), rather than another product's peak.
/// </summary>
internal static class PeakFlops
{
    // Matched in order against the CUDA device name ("NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe", "NVIDIA H200 NVL", ...):
    // the variants before the plain product name. TFLOP/s, dense bf16.
    private static readonly (Regex Name, string Product, double Tflops)[] Products =
    [
        (Product(@"H200\s+NVL"), "H200 NVL", 835.5),   // H200 datasheet: 1,671 with sparsity
        (Product("H200"), "H200 SXM", 989.4),          // H200 datasheet: 1,979 with sparsity
        (Product(@"H100\s+NVL"), "H100 NVL", 835.5),   // H100 datasheet: 1,671 with sparsity
        (Product(@"H100\s+PCIe"), "H100 PCIe", 756.5), // H100 datasheet: 1,513 with sparsity
        (Product("H100"), "H100 SXM", 989.4),          // H100 datasheet: 1,979 with sparsity
        (Product("H20"), "H20", 148),                  // H20 product brief: 296 with sparsity
        (Product("A100"), "A100", 312),                // A100 datasheet, SXM and PCIe: 624 with sparsity
        (Product("L40S"), "L40S", 362.05),             // L40S datasheet: 733 with sparsity
        (Product("B200"), "B200", 2250),               // HGX B200 datasheet: 36 PFLOPS for 8 GPUs with sparsity
    ];

    /// <summary>The product and its dense bf16 peak in FLOP/s for a device name, or null for a device not in the table.</summary>
    public static (string Product, double FlopsPerSecond)? DenseBf16(string deviceName)
    {
        foreach (var (name, product, tflops) in Products)
            if (name.IsMatch(deviceName)) return (product, tflops * 1e12);
        return null;
    }

    /// <summary>A product name as a whole word: "H20" is not the start of "H200".</summary>
    private static Regex Product(string pattern) => new($@"\b{pattern}\b", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);
}
