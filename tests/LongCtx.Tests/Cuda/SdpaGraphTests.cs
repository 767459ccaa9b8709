using LongCtx.Cuda.Attention;

namespace LongCtx.Tests.Cuda;

/// <summary>
/// What the cuDNN SDPA graphs decide without a GPU: the shapes cudnn-frontend's support checks keep from the engines
/// (declined before any cuDNN call, with the reason), and the FP8 graph's scalars on the 16-byte boundaries its tensors declare.
/// </summary>
public class SdpaGraphTests
{
    private static SdpaShape Shape(int queries, int keys, bool causal, bool windowed = false, bool fp8 = false) =>
        new(8, 2, 128, queries, keys, causal, EngineConfig: 0, Windowed: windowed, Fp8: fp8);

    [Theory]
    [InlineData(91400, 1000, 2000, false, true, false, "9.14.0 has a known bug")]
    [InlineData(91400, 2000, 1000, true, true, false, "at least as many keys as queries")]
    [InlineData(90900, 500, 600, false, true, false, "needs cuDNN 9.10.2")]
    [InlineData(91001, 4096, 4096, true, false, false, "known SDPA forward bugs")]
    [InlineData(91000, 4096, 4096, true, false, true, "no working FP8 SDPA")]
    [InlineData(90002, 256, 256, false, false, true, "needs cuDNN 9.1.0")]
    public void DeclinesWhatTheFrontendDeclinesBeforeCallingCudnn(int version, int queries, int keys, bool causal, bool windowed, bool fp8, string reason)
    {
        var shape = Shape(queries, keys, causal, windowed, fp8);
        Assert.Contains(reason, SdpaForwardGraph.KnownUnsupported(shape, version) ?? "(none)");
        // Handle 0: a call into cuDNN would fail, so the refusal must come first.
        Assert.Null(SdpaForwardGraph.TryBuild(0, shape, version, out string refusal));
        Assert.Contains(reason, refusal);
        Assert.Contains($"{queries}x{keys}", refusal);
    }

    [Theory]
    [InlineData(91400, 1000, 1024, false, true, false)] // the 9.14.0 bug needs more than 1024 keys
    [InlineData(91401, 1000, 2000, false, true, false)]
    [InlineData(91400, 3000, 4000, true, true, false)]  // causal windows are not affected
    [InlineData(91002, 500, 600, false, true, false)]
    [InlineData(91400, 2000, 1000, true, false, false)] // more queries than keys without a window
    [InlineData(91001, 4096, 4096, true, false, true)]  // FP8 is not the bf16 engines' bug
    [InlineData(90100, 256, 256, false, false, true)]
    public void LeavesTheOtherShapesToTheEngines(int version, int queries, int keys, bool causal, bool windowed, bool fp8) =>
        Assert.Null(SdpaForwardGraph.KnownUnsupported(Shape(queries, keys, causal, windowed, fp8), version));

    [Fact]
    public void Fp8ScalarsSitOnTheSixteenByteBoundariesTheGraphDeclares()
    {
        nint buffer = 0x7f00_0100; // 256-byte aligned, as cuMemAlloc gives
        var addresses = Enumerable.Range(0, SdpaFp8Graph.Scalars.Count).Select(i => SdpaFp8Graph.Scalars.At(buffer, i)).ToArray();
        Assert.All(addresses, a => Assert.Equal(0, a % 16));
        Assert.Equal(addresses.Length, addresses.Distinct().Count());
        Assert.True(addresses[^1] + sizeof(float) <= buffer + SdpaFp8Graph.Scalars.Bytes, "the last scalar lies past the buffer");
    }
}
