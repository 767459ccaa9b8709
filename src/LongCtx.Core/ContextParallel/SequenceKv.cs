using LongCtx.Backends;
using LongCtx.Tensors;

namespace LongCtx.ContextParallel;

/// <summary>
/// The KV one rank holds for one sequence, every layer: rows appended in the order the rank computed
/// them (its prefill chunks, then the decode tokens placed on it). Capacity grows by an eighth at least, so a
/// long conversation does not copy its cache on every turn, yet decoding after a 128K prefill asks for
/// 1.125x the prefill's KV, not twice it (a batch of such caches is what fills a GPU). A prefill reserves its
/// rows and that eighth before it appends (<see cref="Reserve"/>): growing on the first decode step instead
/// copied the whole cache inside it (16 GB at 130K tokens of the 8B shape, 64 GB at 512K).
/// </summary>
public sealed class SequenceKv : IDisposable
{
    private readonly IBackend _backend;
    private readonly int _kvHeads, _headDim;
    private readonly Tensor?[] _keys, _values;
    private readonly int[] _count;

    public SequenceKv(IBackend backend, int layers, int kvHeads, int headDim)
    {
        _backend = backend;
        _kvHeads = kvHeads;
        _headDim = headDim;
        _keys = new Tensor?[layers];
        _values = new Tensor?[layers];
        _count = new int[layers];
    }

    /// <summary>Rows held in layer 0 (every layer holds the same rows once a pass is complete).</summary>
    public int Count => _count[0];

    public long Bytes => _keys.Sum(k => k?.Bytes ?? 0) * 2;

    /// <summary>
    /// The next <paramref name="rows"/> rows of the layer's keys and values, now counted as held, for the caller to
    /// fill before anything reads them: a decode step fills every sequence's new rows with one copy (<see
    /// cref="BackendOps.CopyEach"/>).
    /// </summary>
    public (Tensor Keys, Tensor Values) Claim(int layer, int rows)
    {
        MakeRoom(layer, _count[layer] + rows);
        var slots = (_keys[layer]!.SliceRows(_count[layer], rows), _values[layer]!.SliceRows(_count[layer], rows));
        _count[layer] += rows;
        return slots;
    }

    public Tensor Keys(int layer) => View(_keys[layer], _count[layer]);
    public Tensor Values(int layer) => View(_values[layer], _count[layer]);

    private Tensor? _empty;

    private Tensor View(Tensor? t, int rows) => t?.SliceRows(0, rows) ?? (_empty ??= _backend.Allocate(_backend.KvCacheType, 0, _kvHeads, _headDim));

    /// <summary>Room for <paramref name="rows"/> rows in every layer and an eighth more (at least 64) for what follows.</summary>
    public void Reserve(int rows)
    {
        for (int layer = 0; layer < _keys.Length; layer++)
            if ((_keys[layer]?.Rows ?? 0) < rows) Resize(layer, rows + Headroom(rows));
    }

    private static int Headroom(int rows) => Math.Max(rows / 8, 64);

    private void MakeRoom(int layer, int rows)
    {
        var old = _keys[layer];
        if (old is not null && old.Rows >= rows) return;
        Resize(layer, Math.Max(rows, old is null ? rows : old.Rows + Headroom(old.Rows)));
    }

    private void Resize(int layer, int capacity)
    {
        _keys[layer] = Grow(_keys[layer], capacity, _count[layer]);
        _values[layer] = Grow(_values[layer], capacity, _count[layer]);
    }

    private Tensor Grow(Tensor? old, int capacity, int used)
    {
        var t = _backend.Allocate(_backend.KvCacheType, capacity, _kvHeads, _headDim);
        if (old is not null)
        {
            if (used > 0) _backend.Copy(old.SliceRows(0, used), t.SliceRows(0, used));
            old.Dispose();
        }
        return t;
    }

    public void Dispose()
    {
        foreach (var t in _keys) t?.Dispose();
        foreach (var t in _values) t?.Dispose();
        _empty?.Dispose();
    }
}
