using LongCtx.Cuda.Native;

namespace LongCtx.Cuda.Runtime;

/// <summary>
/// A caching allocator for one device, so a prefill does not call cuMemAlloc per tensor: freed blocks go
/// to a free list by rounded size and are handed out again. All use is ordered on the device's compute
/// stream (and the communication stream waits on it), so a block freed by the host may be reused at once.
/// When the device runs out, cached blocks are released and the allocation retried once.
/// </summary>
internal sealed class DeviceMemoryPool : IDisposable
{
    private readonly Dictionary<long, Stack<nint>> _free = [];
    private readonly object _lock = new();
    private long _cachedBytes, _usedBytes;

    public long UsedBytes => _usedBytes;
    /// <summary>Freed blocks kept for reuse: memory a new allocation can still get.</summary>
    public long CachedBytes => _cachedBytes;
    public long PeakBytes { get; private set; }

    public static long RoundUp(long bytes)
    {
        bytes = Math.Max(bytes, 256);
        if (bytes <= 1 << 20) return (long)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)bytes);
        const long granule = 2 << 20;
        return (bytes + granule - 1) / granule * granule;
    }

    public nint Allocate(long bytes)
    {
        long size = RoundUp(bytes);
        lock (_lock)
        {
            if (_free.TryGetValue(size, out var stack) && stack.Count > 0)
            {
                _cachedBytes -= size;
                Track(size);
                return stack.Pop();
            }
        }
        int status = CudaDriver.cuMemAlloc(out var p, (nuint)size);
        if (status == 2)
        {
            ReleaseCached();
            status = CudaDriver.cuMemAlloc(out p, (nuint)size);
        }
        if (status == 2)
        {
            CudaDriver.cuMemGetInfo(out var free, out var total);
            throw new LongCtxException($"GPU out of memory allocating {size / 1e9:0.##} GB ({_usedBytes / 1e9:0.##} GB in use, {free / 1e9:0.##} of {total / 1e9:0.##} GB free): use more GPUs, a shorter prompt or a smaller model");
        }
        CudaDriver.Check(status, "cuMemAlloc");
        lock (_lock) Track(size);
        return p;
    }

    public void Free(nint pointer, long bytes)
    {
        long size = RoundUp(bytes);
        lock (_lock)
        {
            if (!_free.TryGetValue(size, out var stack)) _free[size] = stack = new Stack<nint>();
            stack.Push(pointer);
            _cachedBytes += size;
            _usedBytes -= size;
        }
    }

    private void Track(long size)
    {
        _usedBytes += size;
        PeakBytes = Math.Max(PeakBytes, _usedBytes);
    }

    public void ReleaseCached()
    {
        lock (_lock)
        {
            foreach (var stack in _free.Values)
                while (stack.Count > 0) CudaDriver.cuMemFree(stack.Pop());
            _cachedBytes = 0;
        }
    }

    public void Dispose() => ReleaseCached();
}
