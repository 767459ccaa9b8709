using System.Runtime.InteropServices;

namespace LongCtx.Cuda.Ops;

/// <summary>Kernels/fp8_quant.cu's StoreList, passed by value to quantize_store_list.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct StoreListArgument
{
    public const int MaxStores = 32;
    private fixed long _from[MaxStores];
    private fixed long _to[MaxStores];
    private fixed float _scale[MaxStores];
    private fixed int _end[MaxStores];
    private int _count;

    public readonly int Count => _count;

    /// <summary>The 8-element chunks of all the stores (a thread of the launch each).</summary>
    public readonly int Chunks => _count == 0 ? 0 : _end[_count - 1];

    public void Add(nint from, nint to, float scale, int chunks)
    {
        if (_count == MaxStores) throw new InvalidOperationException($"a store list holds {MaxStores} stores");
        _from[_count] = from;
        _to[_count] = to;
        _scale[_count] = scale;
        _end[_count] = Chunks + chunks;
        _count++;
    }
}

/// <summary>Kernels/gemv_fp8.cu's Projections, passed by value to gemv_fp8_each: up to three FP8 projections of one input.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct Fp8ProjectionsArgument
{
    public const int Max = 3;
    private fixed long _w[Max];
    private fixed long _sw[Max];
    private fixed long _bias[Max];
    private fixed long _y[Max];
    private fixed int _n[Max];
    private int _count;

    public readonly int Count => _count;

    public void Add(nint w, nint scales, nint bias, nint y, int n)
    {
        if (_count == Max) throw new InvalidOperationException($"gemv_fp8_each takes {Max} projections");
        _w[_count] = w;
        _sw[_count] = scales;
        _bias[_count] = bias;
        _y[_count] = y;
        _n[_count] = n;
        _count++;
    }
}
