using LongCtx.Backends;
using LongCtx.Cuda.Runtime;
using LongCtx.Sampling;
using LongCtx.Tensors;

namespace LongCtx.Cuda.Ops;

/// <summary>Sampling where the logits are (<see cref="ISamplingOps"/>): only tokens and their logprobs come back from the GPU.</summary>
public sealed unsafe partial class CudaBackend
{
    /// <summary>
    /// Kernels/draw_tokens.cu, a block a row and up to 32 rows a launch; only the tokens come back. Draws with an
    /// adjustment (penalties, logit bias) pick from a copy of the logits that Kernels/adjust_logits.cu changed, so the
    /// logprobs computed afterwards from <paramref name="x"/> stay the raw logits'.
    /// </summary>
    public unsafe void DrawTokens(Tensor x, ReadOnlySpan<TokenDraw> draws, Span<int> result)
    {
        var xs = C(x);
        Check(xs.DType == DType.BF16 && result.Length == xs.Rows && draws.Length == xs.Rows, $"DrawTokens: {xs}, {draws.Length} draws into {result.Length} tokens");
        if (xs.Rows == 0) return;
        using var adjusted = Adjusted(xs, draws);
        if (adjusted is not null) xs = adjusted;
        using var tokens = (CudaTensor)Scratch(DType.I32, xs.Rows);
        var function = _device.Function("draw_tokens.cu", "draw_tokens");
        for (int start = 0; start < xs.Rows; start += TokenDrawsArgument.MaxRows)
        {
            int rows = Math.Min(TokenDrawsArgument.MaxRows, xs.Rows - start);
            var argument = new TokenDrawsArgument(draws.Slice(start, rows));
            _device.LaunchDependentWithStruct(function, ((uint)rows, 1, 1), 1024, 0, (nint)(&argument),
                xs.Pointer + (nint)start * xs.RowLength * sizeof(ushort), tokens.Pointer + start * sizeof(int), xs.RowLength);
        }
        Download<int>(tokens, result);
    }

    /// <summary>A copy of the logits with each draw's adjustment applied (Kernels/adjust_logits.cu); null when no draw adjusts any.</summary>
    private CudaTensor? Adjusted(CudaTensor x, ReadOnlySpan<TokenDraw> draws)
    {
        int count = 0;
        foreach (var d in draws) count += d.Adjust?.Tokens.Count ?? 0;
        if (count == 0) return null;
        int n = x.RowLength;
        var entries = new int[4 * count];
        // Floats go up as their bits: Upload<float> makes bf16.
        var bias = new int[count];
        var penalties = new int[3 * draws.Length];
        int at = 0;
        for (int row = 0; row < draws.Length; row++)
        {
            if (draws[row].Adjust is not { } a) continue;
            (penalties[3 * row], penalties[3 * row + 1], penalties[3 * row + 2]) = (Bits(a.Repetition), Bits(a.Frequency), Bits(a.Presence));
            for (int i = 0; i < a.Tokens.Count; i++, at++)
            {
                if ((uint)a.Tokens[i] >= (uint)n) throw new SettingException(Setting.LogitBias, $"names token {a.Tokens[i]}, outside the vocabulary of {n}");
                (entries[4 * at], entries[4 * at + 1], entries[4 * at + 2], entries[4 * at + 3]) = (row, a.Tokens[i], a.OutputCounts[i], a.Seen[i] ? 1 : 0);
                bias[at] = Bits(a.Bias[i]);
            }
        }
        var copy = (CudaTensor)Scratch(DType.BF16, x.Rows, n);
        Copy(x, copy);
        using var entryList = (CudaTensor)Upload<int>(entries, count, 4);
        using var biasList = (CudaTensor)Upload<int>(bias, count);
        using var rowPenalties = (CudaTensor)Upload<int>(penalties, draws.Length, 3);
        const int threads = 256;
        _device.Launch(_device.Function("adjust_logits.cu", "adjust_logits"), ((uint)((count + threads - 1) / threads), 1), threads, 0,
            copy.Pointer, entryList.Pointer, biasList.Pointer, rowPenalties.Pointer, count, n);
        return copy;
        static int Bits(float f) => BitConverter.SingleToInt32Bits(f);
    }

    /// <summary>
    /// Kernels/token_logprobs.cu, a block a row; only the logprobs and the top ids come back, in one download (one
    /// wait for the GPU): a row of 1 + 2 · top ints, the token's logprob, the top ids and their logprobs (floats as
    /// their bits).
    /// </summary>
    public PositionLogprobs[] Logprobs(Tensor x, ReadOnlySpan<int> tokens, int top)
    {
        var xs = C(x);
        int rows = xs.Rows, n = xs.RowLength;
        if (xs.DType != DType.BF16 || tokens.Length != rows || top is < 0 or > Sampling.Logprobs.MaxTop)
            throw new LongCtxException($"Logprobs: {tokens.Length} tokens and the top {top} of logits {xs} (bf16, a token a row, top 0 to {Sampling.Logprobs.MaxTop})");
        foreach (int token in tokens)
            if ((uint)token >= (uint)n) throw new LongCtxException($"Logprobs: token {token} is outside the vocabulary of {n}");
        if (rows == 0) return [];
        int stride = 1 + 2 * top;
        using var ids = (CudaTensor)Upload<int>(tokens, rows);
        using var figures = (CudaTensor)Scratch(DType.I32, rows, stride);
        _device.LaunchDependent(_device.Function("token_logprobs.cu", "token_logprobs"), ((uint)rows, 1), 1024, 0,
            xs.Pointer, ids.Pointer, figures.Pointer, n, top);
        var all = new int[rows * stride];
        Download<int>(figures, all);
        int count = Math.Min(top, n); // as Sampling.Logprobs.Of lists
        var result = new PositionLogprobs[rows];
        for (int r = 0; r < rows; r++)
        {
            var row = all.AsSpan(r * stride, stride);
            var most = new TopLogprob[count];
            for (int j = 0; j < count; j++) most[j] = new TopLogprob(row[1 + j], BitConverter.Int32BitsToSingle(row[1 + top + j]));
            result[r] = new PositionLogprobs(BitConverter.Int32BitsToSingle(row[0]), most);
        }
        return result;
    }
}
