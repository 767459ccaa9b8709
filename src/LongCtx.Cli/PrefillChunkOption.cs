using System.CommandLine;

namespace LongCtx.Cli;

/// <summary>--prefill-chunk N: exact prefills of long prompts N tokens at a time against the cache they build (InferenceEngine.PrefillChunkTokens).</summary>
internal static class PrefillChunkOption
{
    public static Option<int?> Create() => new("--prefill-chunk")
    {
        Description = "prefill long prompts N tokens at a time against the KV cache they build (exact; bounds activation memory); default: whole",
    };
}
