using LongCtx.Engine;

namespace LongCtx.Server;

/// <summary>A validated completion or chat request, as the scheduler runs it and the endpoint answers it.</summary>
public sealed record GenerationParams
{
    public required bool Chat { get; init; }
    public required int[] PromptTokens { get; init; }
    public required int MaxTokens { get; init; }
    public required SamplingOptions Sampling { get; init; }
    public required string Strategy { get; init; }
    public IReadOnlyList<string> Stop { get; init; } = [];
    public bool Stream { get; init; }
    public bool IncludeUsage { get; init; }
}
