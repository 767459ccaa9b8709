using System.Runtime.InteropServices;

namespace LongCtx.Cuda.Ops;

/// <summary>
/// Kernels/elementwise.cu's CopyList, passed by value to copy_list: up to <see cref="MaxCopies"/> copies of whole
/// 16-byte words, copy c moving the launch's words [End[c − 1], End[c]).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct CopyListArgument
{
    public const int MaxCopies = 32;
    private fixed long _from[MaxCopies];
    private fixed long _to[MaxCopies];
    private fixed int _end[MaxCopies];
    private int _count;

    public readonly int Count => _count;

    /// <summary>The 16-byte words of all the copies (a thread of the launch each).</summary>
    public readonly int Words => _count == 0 ? 0 : _end[_count - 1];

    public void Add(nint from, nint to, int words)
    {
        if (_count == MaxCopies) throw new InvalidOperationException($"a copy list holds {MaxCopies} copies");
        _from[_count] = from;
        _to[_count] = to;
        _end[_count] = Words + words;
        _count++;
    }
}
