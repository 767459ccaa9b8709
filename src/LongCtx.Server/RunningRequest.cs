using LongCtx.Engine;

namespace LongCtx.Server;

/// <summary>
/// A job in the engine loop: its request's state there and, with logprobs, the entries of the tokens whose text has not
/// gone out yet (a token's text can wait for the next token, or for the stop strings).
/// </summary>
internal sealed class RunningRequest(GenerationJob job, RequestState state)
{
    private readonly List<TokenLogprob>? _logprobs = job.Params.Logprobs is null ? null : [];
    /// <summary>Where the reply's text starts in the choice's text (after the echoed prompt), for text_offset.</summary>
    private readonly int _replyOffset = job.Params.EchoText?.Length ?? 0;

    public GenerationJob Job { get; } = job;
    public RequestState State { get; } = state;
    /// <summary>When its last token was drawn (a Stopwatch timestamp; 0 before the first): the time per output token is measured from it.</summary>
    public long LastTokenAt { get; set; }

    /// <summary>A token the loop drew: records its logprobs entry and sends the text it released, with the entries it releases.</summary>
    public void Take(StepOutput output)
    {
        if (_logprobs is not null) _logprobs.Add(TokenLogprob.Of(output.Token!.Value, output.Logprobs!, _replyOffset + output.TextOffset));
        if (output.Text.Length > 0) Job.Send(new TextEvent(output.Text, TakeLogprobs()));
    }

    /// <summary>The entries recorded since the last call, to go out with the text just released; null without logprobs.</summary>
    public IReadOnlyList<TokenLogprob>? TakeLogprobs()
    {
        if (_logprobs is null) return null;
        var taken = _logprobs.ToArray();
        _logprobs.Clear();
        return taken;
    }

    public Usage Usage => new(Job.Params.PromptTokens.Length, State.Generated.Count, State.CachedTokens);
}
