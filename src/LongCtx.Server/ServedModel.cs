using LongCtx.Approximate;
using LongCtx.Engine;
using LongCtx.Text;

namespace LongCtx.Server;

/// <summary>
/// What the server serves: the engine (owned by the caller, used only from the scheduler thread), the
/// tokenizer, the model's chat template if it has one, the tokens that end a reply, and APB's
/// retaining heads when the model directory has them (else APB scores with the training-free scorer).
/// </summary>
public sealed class ServedModel(string id, InferenceEngine engine, Tokenizer tokenizer, ChatTemplate? template, RetainingHeadWeights? retainingHeads = null)
{
    public string Id { get; } = id;
    public InferenceEngine Engine { get; } = engine;
    public Tokenizer Tokenizer { get; } = tokenizer;
    public ChatTemplate? Template { get; } = template;
    public RetainingHeadWeights? RetainingHeads { get; } = retainingHeads;
    public ReplyTokens Replies { get; } = new(capacity: 64);

    /// <summary>EOS tokens of config.json and of the tokenizer, and the chat template's end of turn.</summary>
    public IReadOnlySet<int> StopTokens { get; } = engine.Config.EosTokenIds.Concat(tokenizer.EosTokenIds)
        .Concat(template?.EndOfTurnToken(tokenizer) is { } end ? [end] : [])
        .ToHashSet();
}
