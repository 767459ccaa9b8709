using LongCtx.Sampling;

namespace LongCtx.Engine;

/// <summary>
/// The rows of a forward pass whose results the lead rank computes, numbered in the batch (sequence after sequence):
/// kept rows, whose logits come back; drawn rows, a token each (with its logprobs when asked); scored rows, a given
/// token's logprobs each. Logprobs are computed for the most any sequence asks and cut to each one's own count.
/// </summary>
internal sealed class WantedRows
{
    private readonly int[] _kept, _scored;
    private readonly int?[] _drawTop, _scoreTop;
    private readonly bool[] _draws;

    private WantedRows(int sequences)
    {
        _kept = new int[sequences];
        _scored = new int[sequences];
        _drawTop = new int?[sequences];
        _scoreTop = new int?[sequences];
        _draws = new bool[sequences];
    }

    public List<int> Kept { get; } = [];
    public List<int> Drawn { get; } = [];
    public List<TokenDraw> Draws { get; } = [];
    public List<int> Scored { get; } = [];
    public List<int> ScoredTokens { get; } = [];
    /// <summary>Most likely tokens listed with each drawn token; null: no logprobs.</summary>
    public int? DrawTop => _drawTop.Max();
    public int ScoredTop => _scoreTop.Max() ?? 0;

    /// <summary>A prefill's rows: each input's new tokens in turn.</summary>
    public static WantedRows Of(IReadOnlyList<PrefillInput> batch)
    {
        var w = new WantedRows(batch.Count);
        int offset = 0;
        for (int i = 0; i < batch.Count; i++)
        {
            var input = batch[i];
            int n = input.NewTokens.Length;
            w._kept[i] = Math.Min(input.KeepLast, n);
            for (int j = n - w._kept[i]; j < n; j++) w.Kept.Add(offset + j);
            if (input.Draw is { } draw) w.AddDraw(i, offset + n - 1, draw, input.DrawLogprobs);
            if (input.Scoring is { } scoring)
            {
                w._scoreTop[i] = scoring.Top;
                for (int j = 0; j < n; j++)
                    if (scoring.Next[j] >= 0)
                    {
                        w.Scored.Add(offset + j);
                        w.ScoredTokens.Add(scoring.Next[j]);
                        w._scored[i]++;
                    }
            }
            offset += n;
        }
        return w;
    }

    /// <summary>A decode step's rows, one a sequence: every row kept, or every row drawn.</summary>
    public static WantedRows Decode(int sequences, IReadOnlyList<TokenDraw>? draws, IReadOnlyList<int?>? logprobs)
    {
        var w = new WantedRows(sequences);
        for (int i = 0; i < sequences; i++)
        {
            if (draws is null)
            {
                w._kept[i] = 1;
                w.Kept.Add(i);
            }
            else w.AddDraw(i, i, draws[i], logprobs?[i]);
        }
        return w;
    }

    private void AddDraw(int sequence, int row, TokenDraw draw, int? top)
    {
        _draws[sequence] = true;
        _drawTop[sequence] = top;
        Drawn.Add(row);
        Draws.Add(draw);
    }

    /// <summary>Each sequence's kept rows of logits [kept × vocab], from all of them in row order.</summary>
    public float[][] KeptPerSequence(float[]? logits, int vocab)
    {
        var result = new float[_kept.Length][];
        int at = 0;
        for (int i = 0; i < _kept.Length; i++)
        {
            result[i] = _kept[i] == 0 ? [] : logits!.AsSpan(at * vocab, _kept[i] * vocab).ToArray();
            at += _kept[i];
        }
        return result;
    }

    /// <summary>Each sequence's drawn token (null where none was drawn), its logprobs cut to what it asked; null: no draws.</summary>
    public DrawnToken?[]? DrawnPerSequence(int[]? tokens, PositionLogprobs[]? logprobs)
    {
        if (Drawn.Count == 0) return null;
        var result = new DrawnToken?[_draws.Length];
        int at = 0;
        for (int i = 0; i < _draws.Length; i++)
        {
            if (!_draws[i]) continue;
            result[i] = new DrawnToken(tokens![at], _drawTop[i] is { } top ? logprobs![at].Cut(top) : null);
            at++;
        }
        return result;
    }

    /// <summary>Each sequence's scored rows' logprobs (empty where it asked none); null: no scoring.</summary>
    public PositionLogprobs[][]? ScoredPerSequence(PositionLogprobs[]? all)
    {
        if (_scoreTop.All(t => t is null)) return null;
        var result = new PositionLogprobs[_scored.Length][];
        int at = 0;
        for (int i = 0; i < _scored.Length; i++)
        {
            result[i] = (all ?? []).AsSpan(at, _scored[i]).ToArray().Select(p => p.Cut(_scoreTop[i] ?? 0)).ToArray();
            at += _scored[i];
        }
        return result;
    }
}
