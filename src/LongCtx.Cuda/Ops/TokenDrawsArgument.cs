using System.Runtime.InteropServices;
using LongCtx.Sampling;

namespace LongCtx.Cuda.Ops;

/// <summary>
/// Kernels/draw_tokens.cu's TokenDraws, passed by value to draw_tokens: up to <see cref="MaxRows"/> rows' draws, each
/// its uniform number, log2(e)/T, top-p and top-k (1 for greedy, which is what top-k 1 picks).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct TokenDrawsArgument
{
    public const int MaxRows = 32;
    private fixed double _u[MaxRows];
    private fixed float _log2Scale[MaxRows];
    private fixed float _topP[MaxRows];
    private fixed int _topK[MaxRows];
    private int _rows;

    public TokenDrawsArgument(ReadOnlySpan<TokenDraw> draws)
    {
        if (draws.Length > MaxRows) throw new ArgumentException($"a launch draws at most {MaxRows} rows");
        for (int i = 0; i < draws.Length; i++)
        {
            _u[i] = draws[i].U;
            _log2Scale[i] = draws[i].Log2Scale;
            _topP[i] = draws[i].IsGreedy ? 1f : draws[i].TopP;
            _topK[i] = draws[i].EffectiveTopK;
        }
        _rows = draws.Length;
    }
}
