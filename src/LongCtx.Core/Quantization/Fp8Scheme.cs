namespace LongCtx.Quantization;

/// <summary>How the scales of an FP8 weight [out, in] are laid out.</summary>
public enum Fp8WeightScaling
{
    /// <summary>One scale for the whole weight (compressed-tensors <c>strategy: tensor</c>).</summary>
    PerTensor,
    /// <summary>One scale per output row (compressed-tensors <c>channel</c>, fbgemm_fp8, <c>--quantization fp8</c>).</summary>
    PerRow,
    /// <summary>One scale per 128 × 128 block, [out/128, in/128] (<c>fp8</c> with <c>weight_block_size</c>).</summary>
    Block,
}

/// <summary>How a quantised linear layer's input is quantised, per the checkpoint's format (bench/reference/FP8.md).</summary>
public enum Fp8ActivationScaling
{
    /// <summary>Dynamic per row: scale = max(f32(amax / 448), f32(1 / (448·512))), code = e4m3(f32(x / scale)).</summary>
    PerToken,
    /// <summary>fbgemm_fp8: m = min(max(amax, 1e-12), ub), inv = f32(448 / m), code = e4m3(f32(x · inv)), scale = f32(1 / inv).</summary>
    PerTokenBounded,
    /// <summary>Per row and group of 128 columns: scale = f32(max(amax, 1e-10) / 448), code = e4m3(f32(x / scale)).</summary>
    PerTokenGroup,
    /// <summary>Static: the checkpoint's input_scale, code = e4m3(f32(x / scale)); values past 448·scale saturate.</summary>
    Static,
}

/// <summary>An activation scheme with its parameter: the ub of <see cref="Fp8ActivationScaling.PerTokenBounded"/>, the scale of <see cref="Fp8ActivationScaling.Static"/>.</summary>
public readonly record struct Fp8Activations(Fp8ActivationScaling Scaling, float Parameter = 0)
{
    public const int Group = 128;

    public static Fp8Activations PerToken => new(Fp8ActivationScaling.PerToken);

    /// <summary>Scales a row of <paramref name="k"/> inputs gets: 1, or k / 128 per group; a static scheme has one for every row.</summary>
    public int ScalesPerRow(int k) => Scaling == Fp8ActivationScaling.PerTokenGroup ? k / Group : 1;

    /// <summary>The scales <see cref="Fp8Quantizer.Activations"/> writes for <paramref name="rows"/> rows.</summary>
    public int ScaleCount(int rows, int k) => Scaling == Fp8ActivationScaling.Static ? 1 : rows * ScalesPerRow(k);

    public override string ToString() => Scaling switch
    {
        Fp8ActivationScaling.PerToken => "fp8 per token",
        Fp8ActivationScaling.PerTokenBounded => $"fp8 per token (ub {Parameter})",
        Fp8ActivationScaling.PerTokenGroup => "fp8 per token and group of 128",
        _ => "fp8 static per tensor",
    };
}

/// <summary>
/// An FP8 linear layer's scales: the weight's (float32, widened from the checkpoint's BF16 or F32) and how its input
/// is quantised. y[t, n] = (Σ_k qa[t, k]·qw[n, k]) · sa[t] · sw[n] (per group of 128 columns for blocks), the products
/// exact in float32, summed in float32, scaled after the sum.
/// </summary>
public sealed class Fp8Linear(Fp8WeightScaling weightScaling, float[] weightScales, Fp8Activations activations)
{
    public const int BlockSize = 128;

    public Fp8WeightScaling WeightScaling { get; } = weightScaling;
    /// <summary>[1], [out] or [out/128, in/128] row-major.</summary>
    public float[] WeightScales { get; } = weightScales;
    public Fp8Activations Activations { get; } = activations;

    /// <summary>The weight's scale for output row n and input group g (<see cref="Groups"/> of the input).</summary>
    public float WeightScale(int n, int g, int groups) => WeightScaling switch
    {
        Fp8WeightScaling.PerTensor => WeightScales[0],
        Fp8WeightScaling.PerRow => WeightScales[n],
        _ => WeightScales[n / BlockSize * groups + g],
    };

    /// <summary>
    /// The scales of output rows [start, start + count) of a weight with <paramref name="columns"/> inputs: a
    /// column-parallel rank's share (q, k, v, gate, up). Its input is the whole row, quantised as before.
    /// </summary>
    public Fp8Linear OutputRows(int start, int count, int columns) => WeightScaling switch
    {
        Fp8WeightScaling.PerTensor => this,
        Fp8WeightScaling.PerRow => new(WeightScaling, WeightScales[start..(start + count)], Activations),
        _ => new(WeightScaling, WeightScales[(WholeBlocks(start, "row") * (columns / BlockSize))..(WholeBlocks(start + count, "row") * (columns / BlockSize))], Activations),
    };

    /// <summary>
    /// The scales of input columns [start, start + count) of a [rows, columns] weight: a row-parallel rank's share (o,
    /// down), every output row with its columns' blocks. Its input is its slice of the activations, quantised per token
    /// (or group) over that slice: a dynamic per-token scale is then the slice's, not the whole row's; the rank's
    /// partial sum is exact for that quantisation and the all-reduce adds the ranks' sums. Groups of 128 inputs stay the
    /// whole row's groups, since <see cref="Model.TensorSlice.Of"/> gives each rank whole ones.
    /// </summary>
    public Fp8Linear InputColumns(int start, int count, int rows, int columns)
    {
        if (WeightScaling != Fp8WeightScaling.Block) return this;
        int first = WholeBlocks(start, "column"), n = WholeBlocks(count, "column"), stride = columns / BlockSize;
        var scales = new float[rows / BlockSize * n];
        for (int r = 0; r < rows / BlockSize; r++) Array.Copy(WeightScales, r * stride + first, scales, r * n, n);
        return new(WeightScaling, scales, Activations);
    }

    private static int WholeBlocks(int index, string what) => index % BlockSize == 0
        ? index / BlockSize
        : throw new ArgumentException($"an FP8 weight's {what} slice at {index} splits a {BlockSize}-wide scale block (TensorSlice.Of refuses such a split)");

    /// <summary>Groups the input columns are summed in before scaling: k / 128 where either side is scaled per 128 columns, else 1.</summary>
    public int Groups(int k) => WeightScaling == Fp8WeightScaling.Block || Activations.Scaling == Fp8ActivationScaling.PerTokenGroup ? k / BlockSize : 1;
}
