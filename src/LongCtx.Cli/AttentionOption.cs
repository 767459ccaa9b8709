using System.CommandLine;

namespace LongCtx.Cli;

/// <summary>--attention auto|cudnn|kernel: which GPU attention implementation runs (checked by <see cref="Devices.Check"/>).</summary>
internal static class AttentionOption
{
    public static Option<string> Create() => new("--attention")
    {
        Description = "GPU attention: auto (cuDNN fused SDPA where it loads and applies, else the own kernel), cudnn (fail if cuDNN 9 cannot be loaded) or kernel",
        DefaultValueFactory = _ => "auto",
    };
}
