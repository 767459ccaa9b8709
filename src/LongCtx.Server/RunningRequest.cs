using System.Text;
using LongCtx.Engine;
using LongCtx.Text;

namespace LongCtx.Server;

/// <summary>A job on the scheduler: its sequence (KV on the ranks), sampler, text decoding and what it generated so far.</summary>
internal sealed class RunningRequest(GenerationJob job, Sequence sequence, int cachedTokens, Tokenizer tokenizer)
{
    private readonly StreamingDecoder _decoder = tokenizer.CreateStreamingDecoder(skipSpecialTokens: true);
    private readonly StopMatcher _stops = new(job.Params.Stop);
    private readonly StringBuilder _text = new();

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

    /// <summary>Decodes a drawn token and returns the text the client may see now.</summary>
    public string AddText(int token)
    {
        var (text, stopped) = _stops.Push(_decoder.Push(token));
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

    public Usage Usage => new(Job.Params.PromptTokens.Length, Generated.Count, CachedTokens);
}
