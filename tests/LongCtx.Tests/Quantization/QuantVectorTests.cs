using System.Runtime.InteropServices;
using LongCtx.Model;
using LongCtx.Quantization;
using LongCtx.Tensors;
using LongCtx.Tests.Model;

namespace LongCtx.Tests.Quantization;

/// <summary>
/// The e4m3 rounding and the quantisers of every FP8 format against quant-vectors.safetensors (numpy, bit-exact cases:
/// midpoints and their neighbours, subnormals, values past 448, an outlier row, an all-zero row, a floored scale, one
/// large group, exact ties): every code and every scale equal.
/// </summary>
public class QuantVectorTests
{
    private static readonly Dictionary<string, (int[] Shape, byte[] Bytes)> V = Load();

    private static Dictionary<string, (int[], byte[])> Load()
    {
        using var file = SafetensorsFile.Open(Path.Combine(Fp8Fixture.Root, "quant-vectors.safetensors"));
        return file.Tensors.ToDictionary(t => t.Key, t => (t.Value.Shape, ModelFixtures.Bytes(t.Value)));
    }

    private static float[] F(string name) => MemoryMarshal.Cast<byte, float>(V[name].Bytes).ToArray();
    private static byte[] B(string name) => V[name].Bytes;

    [Fact]
    public void EveryCodeDecodesAsNumpy()
    {
        var expected = F("e4m3_values");
        for (int c = 0; c < 256; c++)
            Assert.True(BitConverter.SingleToInt32Bits(expected[c]) == BitConverter.SingleToInt32Bits(E4M3.Values[c]) || (float.IsNaN(expected[c]) && float.IsNaN(E4M3.Values[c])),
                $"code {c:x2}: {E4M3.Values[c]}, numpy {expected[c]}");
    }

    [Fact]
    public void RoundsToNearestEvenAndSaturates()
    {
        var inputs = F("round_inputs");
        var codes = B("round_codes");
        Assert.True(inputs.Length > 1000);
        var wrong = Enumerable.Range(0, inputs.Length).Where(i => E4M3.Encode(inputs[i]) != codes[i]).ToList();
        Assert.True(wrong.Count == 0, $"{wrong.Count} of {inputs.Length} roundings differ, e.g. {string.Join("; ", wrong.Take(5).Select(i => $"{inputs[i]:R} -> {E4M3.Encode(inputs[i]):x2}, numpy {codes[i]:x2}"))}");
    }

    public static TheoryData<string> Schemes() => ["per_token", "fbgemm", "group128", "static"];

    [Theory]
    [MemberData(nameof(Schemes))]
    public void ActivationCodesAndScalesEqualNumpy(string scheme)
    {
        var x = F("x");
        int rows = V["x"].Shape[0], k = V["x"].Shape[1];
        var s = scheme switch
        {
            "per_token" => Fp8Activations.PerToken,
            "fbgemm" => new Fp8Activations(Fp8ActivationScaling.PerTokenBounded, F("fbgemm_ub")[0]),
            "group128" => new Fp8Activations(Fp8ActivationScaling.PerTokenGroup),
            _ => new Fp8Activations(Fp8ActivationScaling.Static, F("static_scale")[0]),
        };
        var codes = new byte[rows * k];
        var scales = new float[s.ScaleCount(rows, k)];
        Fp8Quantizer.Activations(s, x, rows, k, codes, scales);
        Assert.Equal(B($"{scheme}_codes"), codes);
        if (scheme != "static") Assert.Equal(F($"{scheme}_scale"), scales);
    }

    [Fact]
    public void OnlineWeightRowsEqualNumpy()
    {
        var w = F("w");
        int rows = V["w"].Shape[0], cols = V["w"].Shape[1];
        var pinned = GCHandle.Alloc(w, GCHandleType.Pinned);
        try
        {
            var owners = new List<IDisposable>();
            var q = Fp8Weights.QuantizeRows(new HostTensor("w", DType.F32, [rows, cols], pinned.AddrOfPinnedObject()), Fp8Activations.PerToken, owners);
            var codes = new byte[rows * cols];
            Marshal.Copy(q.Data, codes, 0, codes.Length);
            Assert.Equal(B("w_row_codes"), codes);
            Assert.Equal(F("w_row_scale"), q.Fp8!.WeightScales);
            foreach (var o in owners) o.Dispose();
        }
        finally
        {
            pinned.Free();
        }
    }
}
