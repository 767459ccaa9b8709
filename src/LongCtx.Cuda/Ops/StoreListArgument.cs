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
