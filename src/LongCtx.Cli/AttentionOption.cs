using System.CommandLine;
using LongCtx.Cuda;

namespace LongCtx.Cli;

/// <summary>--attention auto|cudnn|kernel: which GPU attention implementation runs (see <see cref="AttentionImplementation"/>).</summary>
internal static class AttentionOption
{
    public static Option<string> Create() => new("--attention")
    {
        Description = "GPU attention: auto (cuDNN fused SDPA where it loads and applies, else the own kernel), cudnn (fail if cuDNN 9 cannot be loaded) or kernel",
        DefaultValueFactory = _ => "auto",
    };

    public static AttentionImplementation Parse(string value, string device)
    {
        var implementation = value switch
        {
            "auto" => AttentionImplementation.Auto,
            "cudnn" => AttentionImplementation.Cudnn,
            "kernel" => AttentionImplementation.Kernel,
            _ => throw new LongCtxException($"--attention {value} is unknown: use auto, cudnn or kernel"),
        };
        if (device != "cuda" && implementation != AttentionImplementation.Auto)
            throw new LongCtxException($"--attention {value} needs --device cuda (the CPU backend has one attention implementation)");
        return implementation;
    }
}
