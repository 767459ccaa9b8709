using LongCtx.Cuda;
using LongCtx.Cuda.Attention;

namespace LongCtx.Tests.Cuda;

/// <summary>The CUDA backend's LONGCTX_* variables, read in one place: the defaults, each switch, and a bad value named.</summary>
public class CudaSettingsTests
{
    [Fact]
    public void UnsetVariablesGiveTheDefaults()
    {
        var s = CudaSettings.FromVariables(_ => null);
        Assert.Equal(new AttentionSettings(), s.Attention);
        Assert.True(s.OwnGemv && s.Runtime.ProgrammaticLaunch && !s.CopyEngineRing && !s.Runtime.ProfileByKernel);
        Assert.True(s.Runtime.Fp8FusedNorm && !s.Runtime.Fp8FastAccumulation);
        Assert.Equal(32, s.Runtime.GemmWorkspaceMiB);
    }

    [Fact]
    public void EachVariableSwitchesItsSetting()
    {
        var values = new Dictionary<string, string>
        {
            [CudaSettings.FlashWgmmaVariable] = "0", [CudaSettings.DecodeMmaVariable] = "0", [CudaSettings.DecodeMmaStagesVariable] = "3",
            [CudaSettings.CudnnCallsVariable] = "rows=8192", [CudaSettings.GemvVariable] = "0", [CudaSettings.ProgrammaticLaunchVariable] = "0",
            [CudaSettings.ProfileByKernelVariable] = "1", [CudaSettings.GemmWorkspaceVariable] = "0", [CudaSettings.KernelCacheVariable] = "/tmp/k",
            [CudaSettings.RingTransfersVariable] = "copy", [CudaSettings.Fp8FastAccumulationVariable] = "1", [CudaSettings.Fp8FusedNormVariable] = "0",
        };
        var s = CudaSettings.FromVariables(values.GetValueOrDefault);
        Assert.Equal(new AttentionSettings { Wgmma = false, DecodeMma = false, DecodeMmaStages = 3, CudnnCalls = new CudnnCallPlan(8192, 0) }, s.Attention);
        Assert.False(s.OwnGemv || s.Runtime.ProgrammaticLaunch);
        Assert.True(s.Runtime.ProfileByKernel && s.CopyEngineRing && s.Runtime.Fp8FastAccumulation && !s.Runtime.Fp8FusedNorm);
        Assert.Equal((0, "/tmp/k"), (s.Runtime.GemmWorkspaceMiB, s.Runtime.KernelCache));
    }

    [Theory]
    [InlineData(CudaSettings.GemvVariable, "yes")]
    [InlineData(CudaSettings.DecodeMmaStagesVariable, "9")]
    [InlineData(CudaSettings.RingTransfersVariable, "nvlink")]
    [InlineData(CudaSettings.GemmWorkspaceVariable, "-1")]
    public void ABadValueIsOneLineNamingTheVariable(string variable, string value)
    {
        var e = Assert.Throws<LongCtxException>(() => CudaSettings.FromVariables(v => v == variable ? value : null));
        Assert.StartsWith($"{variable}={value}: ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
