using System.Runtime.InteropServices;

namespace LongCtx.Model;

/// <summary>
/// A block of unmanaged memory that backs a dummy weight. Outside the GC heap so that tens of gigabytes of
/// weights neither pressure the collector nor hit array size limits; freed on Dispose.
/// </summary>
internal sealed unsafe class NativeBuffer : IDisposable
{
    private void* _ptr;

    public NativeBuffer(long bytes)
    {
        Bytes = bytes;
        // 64-byte alignment: a cache line, and enough for any SIMD load a backend may use.
        _ptr = NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 1), 64);
    }

    public long Bytes { get; }
    public nint Pointer => (nint)_ptr;

    public void Dispose()
    {
        if (_ptr is null) return;
        NativeMemory.AlignedFree(_ptr);
        _ptr = null;
    }
}
