using LongCtx.Approximate;
using LongCtx.Engine;
using LongCtx.Model;
using LongCtx.Text;

namespace LongCtx.Server;

/// <summary>
/// What the server serves: the engine (owned by the caller, used only from the scheduler thread), the tokenizer, the
/// model's chat template if it has one, generation_config.json (the sampling defaults of requests that leave them out,
/// and stop ids), the tokens that end a reply, and APB's retaining heads when the model directory has them (else APB
/// scores with the training-free scorer). <paramref name="id"/> is the name responses carry; requests may name the
/// model by it or by any of <see cref="Names"/> (vLLM's --served-model-name).
/// </summary>
public sealed class ServedModel(string id, InferenceEngine engine, Tokenizer tokenizer, ChatTemplate? template, RetainingHeadWeights? retainingHeads = null,
    GenerationConfig? generation = null, IReadOnlyList<string>? names = null)
{
    public string Id { get; } = id;
    /// <summary>Every name the model answers to, <see cref="Id"/> first.</summary>
    public IReadOnlyList<string> Names { get; } = [id, .. (names ?? []).Where(n => n != id)];
    public InferenceEngine Engine { get; } = engine;
    public Tokenizer Tokenizer { get; } = tokenizer;
    public ChatTemplate? Template { get; } = template;
    public RetainingHeadWeights? RetainingHeads { get; } = retainingHeads;
    public GenerationConfig Generation { get; } = generation ?? GenerationConfig.None;
    public ReplyTokens Replies { get; } = new(capacity: 64);

    /// <summary>EOS tokens of config.json, generation_config.json and the tokenizer, and the chat template's end of turn.</summary>
    public IReadOnlySet<int> StopTokens { get; } = engine.Config.EosTokenIds.Concat(generation?.EosTokenIds ?? []).Concat(tokenizer.EosTokenIds)
        .Concat(template?.EndOfTurnToken(tokenizer) is { } end ? [end] : [])
        .ToHashSet();
}
