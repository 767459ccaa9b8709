using LongCtx.Cuda.Runtime;

namespace LongCtx.Tests.Cuda;

public sealed class BFloat16Tests
{
    [Theory]
    [InlineData(1)]
    [InlineData(15)]
    [InlineData(16)]
    [InlineData(1000)]
    public void ToFloatIsTheTopHalfOfEachFloat(int length)
    {
        var random = new Random();
        var bits = Enumerable.Range(0, length).Select(_ => (ushort)random.Next(0, 65536)).ToArray();
        var floats = new float[length];
        BFloat16.ToFloat(bits, floats);
        for (int i = 0; i < length; i++) Assert.Equal((uint)bits[i] << 16, BitConverter.SingleToUInt32Bits(floats[i]));
    }

    [Fact]
    public void RoundTripsThroughFromFloat()
    {
        var random = new Random();
        var values = Enumerable.Range(0, 333).Select(_ => (float)(random.NextDouble() * 200 - 100)).ToArray();
        var bits = new ushort[values.Length];
        BFloat16.FromFloat(values, bits);
        var back = new float[values.Length];
        BFloat16.ToFloat(bits, back);
        for (int i = 0; i < values.Length; i++) Assert.True(Math.Abs(back[i] - values[i]) <= Math.Abs(values[i]) / 256, $"{values[i]} -> {back[i]}");
    }
}
