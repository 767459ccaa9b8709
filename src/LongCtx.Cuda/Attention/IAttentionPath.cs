using LongCtx.Backends;
using LongCtx.Cuda.Runtime;
using LongCtx.Tensors;

namespace LongCtx.Cuda.Attention;

/// <summary>
/// One attention call as a path receives it, already checked: q [Tq, NH, D] and k, v [Tk, NKV, D] with Tq and Tk at
/// least 1, NH a multiple of NKV, D a multiple of 16 up to 256; the layer's rule (scale, window, soft cap); output [Tq, NH, D]
/// and lse [Tq, NH] to write.
/// </summary>
internal readonly record struct AttentionCall(CudaTensor Q, TokenLayout Queries, CudaTensor K, CudaTensor V, TokenLayout Keys, AttentionRule Rule,
    CudaTensor Output, CudaTensor Lse);

/// <summary>One way of computing attention on a GPU (<see cref="AttentionPaths"/> tries them in turn).</summary>
internal interface IAttentionPath : IDisposable
{
    /// <summary>Calls this path computed so far.</summary>
    long Calls { get; }

    /// <summary>Queues the call and returns true, or returns false with nothing queued when this path does not take it.</summary>
    bool TryRun(in AttentionCall call, AttentionSettings settings);
}
