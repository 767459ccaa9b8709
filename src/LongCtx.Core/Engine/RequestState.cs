using System.Text;
using LongCtx.Approximate;
using LongCtx.ContextParallel;
using LongCtx.Sampling;

namespace LongCtx.Engine;

public enum RequestStatus { Waiting, Decoding, Finished }

/// <summary>Why a generation ended.</summary>
public enum FinishReason
{
    /// <summary>It drew one of its stop tokens (the token is the last generated).</summary>
    StopToken,
    /// <summary>One of its stop strings appeared in the text (the text ends before it).</summary>
    StopText,
    /// <summary>It drew as many tokens as it asked for.</summary>
    Length,
    /// <summary>The next token would pass the model's context window.</summary>
    ContextWindow,
    /// <summary>Its prefill or a decode step failed (<see cref="RequestState.Error"/>).</summary>
    Failed,
    /// <summary>Its driver cancelled it; its KV is released.</summary>
    Cancelled,
}

/// <summary>The finish reasons as OpenAI's API and the CLI's JSON name them.</summary>
public static class FinishReasons
{
    /// <summary>"stop" for a stop token or string, "length" for the token limit or the context window, "error", "cancelled".</summary>
    public static string ApiName(this FinishReason reason) => reason switch
    {
        FinishReason.StopToken or FinishReason.StopText => "stop",
        FinishReason.Length or FinishReason.ContextWindow => "length",
        FinishReason.Failed => "error",
        _ => "cancelled",
    };
}

/// <summary>
/// A request admitted to <see cref="EngineLoop"/>: waiting for (the rest of) its prefill, decoding, or finished, with
/// what it generated. A finished request's sequence, with its KV, is its driver's: to keep for a next turn or release.
/// </summary>
public sealed class RequestState
{
    private readonly StringBuilder _text = new();
    private readonly List<int> _generated = [];
    private readonly List<float> _promptLogits = [];
    private List<PositionLogprobs>? _promptLogprobs;

    internal RequestState(GenerationRequest request, Sequence sequence, int[] newTokens)
    {
        Request = request;
        Sequence = sequence;
        CachedTokens = sequence.CachedTokens;
        NewTokens = newTokens;
        Sampler = new Sampler(request.Sampling, request.PromptTokens);
        Stops = new StopMatcher(request.StopStrings);
        if (request.PromptLogprobs is not null) _promptLogprobs = [];
    }

    public GenerationRequest Request { get; }
    public Sequence Sequence { get; }
    /// <summary>Prompt tokens whose KV the sequence held at admission.</summary>
    public int CachedTokens { get; }
    /// <summary>The prompt tokens the prefill computes: those the sequence had not cached.</summary>
    public int[] NewTokens { get; }
    /// <summary>How many of <see cref="NewTokens"/> are prefilled.</summary>
    public int Prefilled { get; internal set; }
    /// <summary>How many of <see cref="NewTokens"/> are still to be prefilled.</summary>
    public int Remaining => NewTokens.Length - Prefilled;
    public RequestStatus Status { get; internal set; }
    public IReadOnlyList<int> Generated => _generated;
    /// <summary>The text released so far (with <see cref="GenerationRequest.Text"/>).</summary>
    public string Text => _text.ToString();
    public FinishReason? Finish { get; private set; }
    /// <summary>A stop string cut the text: it ended the generation, or turned up in the text held back when it ended otherwise.</summary>
    public bool TextStopped { get; internal set; }
    public Exception? Error { get; private set; }
    /// <summary>The attention strategy the prefill ran, the automatic choice's inputs, an approximate prefill's blocks.</summary>
    public string Strategy { get; internal set; } = "";
    public StrategyChoice? Choice { get; internal set; }
    public ContextBlocks? Blocks { get; internal set; }
    /// <summary>The kept logits of the prompt's last rows, row-major.</summary>
    public float[] PromptLogits => [.. _promptLogits];
    /// <summary>The prompt's logprobs: entry j is new token j + 1's.</summary>
    public IReadOnlyList<PositionLogprobs>? PromptLogprobs => _promptLogprobs;

    internal Sampler Sampler { get; }
    internal StopMatcher Stops { get; }
    /// <summary>Characters of text decoded so far, before stop strings hold any back: where the next token's text starts.</summary>
    internal int DecodedChars { get; set; }

    internal void AddGenerated(int token)
    {
        _generated.Add(token);
        Sampler.Observe(token);
    }
    internal void AddText(string text) => _text.Append(text);
    internal void AddPromptLogits(float[] logits) => _promptLogits.AddRange(logits);
    internal void AddPromptLogprobs(IEnumerable<PositionLogprobs> logprobs) => _promptLogprobs?.AddRange(logprobs);

    internal void End(FinishReason reason, Exception? error = null)
    {
        Status = RequestStatus.Finished;
        Finish = reason;
        Error = error;
    }
}
