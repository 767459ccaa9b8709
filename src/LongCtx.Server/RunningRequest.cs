using System.Text;
using LongCtx.Engine;
using LongCtx.Sampling;
using LongCtx.Text;
namespace LongCtx.Server;

/// <summary>
/// A job on the scheduler: its sequence (KV on the ranks), sampler, text decoding, what it generated so far
/// and, with logprobs, the entries of the tokens whose text has not gone out yet.
/// </summary>
internal sealed class RunningRequest(GenerationJob job, Sequence sequence, int cachedTokens, Tokenizer tokenizer)
{
    private readonly StreamingDecoder _decoder = tokenizer.CreateStreamingDecoder(skipSpecialTokens: true);
    private readonly StopMatcher _stops = new(job.Params.Stop);
    private readonly StringBuilder _text = new();
    private readonly List<TokenLogprob>? _logprobs = job.Params.Logprobs is null ? null : [];
    /// <summary>Where the next token's text starts in the choice's text (after the echoed prompt), for text_offset.</summary>
    private int _decodedChars = job.Params.EchoText?.Length ?? 0;

    public GenerationJob Job { get; } = job;
    public Sequence Sequence { get; } = sequence;
    /// <summary>Prompt tokens whose KV a kept conversation already held.</summary>
    public int CachedTokens { get; } = cachedTokens;
    public Sampler Sampler { get; } = new(job.Params.Sampling);
    public List<int> Generated { get; } = [];
    public string Strategy { get; set; } = "";
    /// <summary>The last drawn token: its KV is computed by the next decode step.</summary>
    public int Pending => Generated[^1];
    /// <summary>Set when a stop sequence in the text ended the generation (the reply's tokens then run past its text).</summary>
    public bool StoppedByText { get; private set; }
    public string Text => _text.ToString();

    /// <summary>Draws the next token from its position's logits (the prefill's last row) and, with logprobs, records its entry.</summary>
    public int Draw(ReadOnlySpan<float> logits)
    {
        int token = Sampler.Next(logits);
        Generated.Add(token);
        if (Job.Params.Logprobs is { } top) _logprobs!.Add(TokenLogprob.Of(logits, token, top, _decodedChars));
        return token;
    }

    /// <summary>Takes the token drawn where the logits are, for <see cref="Sampler"/>'s draw, with its logprobs when the request asks for them.</summary>
    public int Take(int token, PositionLogprobs? logprobs)
    {
        Generated.Add(token);
        if (Job.Params.Logprobs is { } top) _logprobs!.Add(TokenLogprob.Of(token, logprobs! with { Top = logprobs.Top[..Math.Min(top, logprobs.Top.Length)] }, _decodedChars));
        return token;
    }

    /// <summary>Decodes a drawn token and returns the text the client may see now.</summary>
    public string AddText(int token)
    {
        string decoded = _decoder.Push(token);
        _decodedChars += decoded.Length;
        var (text, stopped) = _stops.Push(decoded);
        StoppedByText = stopped;
        _text.Append(text);
        return text;
    }

    /// <summary>The text still held back when the generation ends without a stop sequence.</summary>
    public string FlushText()
    {
        if (StoppedByText) return "";
        var (text, stopped) = _stops.Push(_decoder.Flush());
        string rest = stopped ? text : text + _stops.Flush();
        StoppedByText = stopped;
        _text.Append(rest);
        return rest;
    }

    /// <summary>The entries recorded since the last call, to go out with the text just released; null without logprobs.</summary>
    public IReadOnlyList<TokenLogprob>? TakeLogprobs()
    {
        if (_logprobs is null) return null;
        var taken = _logprobs.ToArray();
        _logprobs.Clear();
        return taken;
    }

    public Usage Usage => new(Job.Params.PromptTokens.Length, Generated.Count, CachedTokens);
}
