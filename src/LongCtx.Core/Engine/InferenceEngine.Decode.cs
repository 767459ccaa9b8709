using LongCtx.ContextParallel;
using LongCtx.Sampling;
using LongCtx.Tensors;

namespace LongCtx.Engine;

/// <summary>Decode: one new token for each sequence of a batch, on the distributed cache.</summary>
public sealed partial class InferenceEngine
{
    /// <summary>
    /// One decode step for a batch of sequences, one new token each: every rank runs the tokens, each
    /// token's KV is stored round-robin on rank position mod N. Returns each sequence's next-token logits.
    /// </summary>
    public IReadOnlyList<float[]> Decode(IReadOnlyList<(Sequence Sequence, int Token)> batch)
    {
        var wanted = WantedRows.Decode(batch.Count, draws: null, logprobs: null);
        return wanted.KeptPerSequence(DecodeStep(batch, wanted).Logits, Config.VocabSize);
    }

    /// <summary>
    /// <see cref="Decode"/> with the sampling done where the logits are: each sequence's next token for its draw
    /// (<see cref="TokenPicker.Pick"/>, greedy: <see cref="Sampler.ArgMax"/>), so only the tokens come back from the GPU.
    /// </summary>
    public int[] DecodeTokens(IReadOnlyList<(Sequence Sequence, int Token)> batch, IReadOnlyList<TokenDraw> draws) => DecodeTokens(batch, draws, (int?)null).Tokens;

    /// <summary>
    /// <see cref="DecodeTokens(IReadOnlyList{ValueTuple{Sequence, int}}, IReadOnlyList{TokenDraw})"/> and, with
    /// <paramref name="logprobsTop"/>, each drawn token's logprob and its position's most likely tokens, also
    /// computed where the logits are.
    /// </summary>
    public (int[] Tokens, PositionLogprobs[]? Logprobs) DecodeTokens(IReadOnlyList<(Sequence Sequence, int Token)> batch, IReadOnlyList<TokenDraw> draws, int? logprobsTop)
    {
        var (tokens, logprobs) = DecodeTokens(batch, draws, Enumerable.Repeat(logprobsTop, batch.Count).ToArray());
        return (tokens, logprobsTop is null ? null : [.. logprobs.Select(l => l!)]);
    }

    /// <summary>The drawn tokens, each with its logprobs when its sequence asks for them (that many most likely tokens; null: none).</summary>
    public (int[] Tokens, PositionLogprobs?[] Logprobs) DecodeTokens(IReadOnlyList<(Sequence Sequence, int Token)> batch, IReadOnlyList<TokenDraw> draws,
        IReadOnlyList<int?> logprobs)
    {
        if (draws.Count != batch.Count || logprobs.Count != batch.Count)
            throw new ArgumentException($"{draws.Count} draws and {logprobs.Count} logprob counts for a batch of {batch.Count}");
        foreach (var top in logprobs)
            if (top is < 0 or > Logprobs.MaxTop) throw new SettingException(Setting.Logprobs, $"must be 0 to {Logprobs.MaxTop} (most likely tokens listed)", top);
        var wanted = WantedRows.Decode(batch.Count, draws, logprobs);
        var output = DecodeStep(batch, wanted);
        var drawn = wanted.DrawnPerSequence(output.Tokens, output.TokenLogprobs)!;
        return ([.. drawn.Select(d => d!.Value.Token)], [.. drawn.Select(d => d!.Value.Logprobs)]);
    }

    private RankOutput DecodeStep(IReadOnlyList<(Sequence Sequence, int Token)> batch, WantedRows wanted)
    {
        foreach (var (seq, token) in batch) CheckTokens(seq, [token]);
        int n = batch.Count;
        var positions = batch.Select(b => b.Sequence.CachedTokens).ToArray();
        var owners = positions.Select(p => p % Ranks).ToArray();
        var queries = new TokenLayout(Enumerable.Range(0, n).ToArray(), positions);
        var keys = new TokenLayout[Ranks];
        for (int r = 0; r < Ranks; r++)
        {
            var layout = new TokenLayoutBuilder(batch.Sum(b => b.Sequence.Placement.On(r).Length) + n);
            for (int i = 0; i < n; i++)
            {
                layout.Append(i, batch[i].Sequence.Placement.On(r));
                if (owners[i] == r) layout.Append(i, positions[i]);
            }
            keys[r] = layout.Build();
        }
        var tokens = batch.Select(b => b.Token).ToArray();
        var decode = new LayerAttention(new DistributedDecode());
        var results = _ranks.Run(rt =>
        {
            var step = new AttentionStep
            {
                Rank = rt.Rank,
                QueriesByRank = Enumerable.Repeat(queries, Ranks).ToArray(),
                KeysByRank = keys,
                Caches = batch.Select(b => rt.CacheOf(b.Sequence.Id)).ToList(),
                Appends = Enumerable.Range(0, n).Where(i => owners[i] == rt.Rank).Select(i => new KvAppend(i, i, 1)).ToList(),
            };
            // Every rank holds every row, so no gathering is needed: the lead reads its own.
            return ForwardAndGather(rt, tokens, step, decode, wanted, row => rt.WorldRank == _ranks.LeadRank ? row : -1, gather: false);
        });
        for (int i = 0; i < n; i++)
        {
            batch[i].Sequence.Placement.Append(owners[i], [positions[i]]);
            batch[i].Sequence.Tokens.Add(tokens[i]);
        }
        return results[0];
    }
}
