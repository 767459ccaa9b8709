using LongCtx.Backends;
using LongCtx.Quantization;
using LongCtx.Tensors;

namespace LongCtx.ContextParallel;

/// <summary>
/// The KV one rank holds for one sequence, every layer: rows appended in the order the rank computed
/// them (its prefill chunks, then the decode tokens placed on it). Capacity grows by an eighth at least, so a
/// long conversation does not copy its cache on every turn, yet decoding after a 128K prefill asks for
/// 1.125x the prefill's KV, not twice it (a batch of such caches is what fills a GPU). A prefill reserves its
/// rows and that eighth before it appends (<see cref="Reserve"/>): growing on the first decode step instead
/// copied the whole cache inside it (16 GB at 130K tokens of the 8B shape, 64 GB at 512K).
///
/// A sliding-window layer keeps only the rows later queries can see: after each pass the strategy drops its oldest
/// rows (<see cref="Forget"/>), so it holds the sequence's last W positions that live on this rank. Its rows stay one
/// contiguous run of its buffer — dropping advances the run's start, appending fills the room after it, and when that
/// runs out the run moves to the front of a buffer sized for it (a copy of at most W rows, every eighth of W appends
/// at most) — so a window's keys are always one block in position order, as the attention kernels want them. A
/// buffer far larger than its rows (after a long prefill) is given back the same way.
///
/// With <see cref="Fp8KvScales"/> the cache holds e4m3 codes (a row stored by copying activations into it quantises
/// them with the layer's scale, and attention reads code · scale): a quarter of the CPU's float32 bytes, half the GPU's bf16.
/// </summary>
public sealed class SequenceKv : IDisposable
{
    private readonly IBackend _backend;
    private readonly int _kvHeads, _headDim;
    private readonly int?[] _windows;
    private readonly Tensor?[] _keys, _values;
    // Per layer: the first held row of the buffer, the rows held, and every row ever appended.
    private readonly int[] _start, _count, _appended;
    private readonly Fp8KvScales? _fp8;

    /// <param name="windows">per layer, its sliding window, or null (or no list) where it keeps every row.</param>
    public SequenceKv(IBackend backend, int layers, int kvHeads, int headDim, IReadOnlyList<int?>? windows = null, Fp8KvScales? fp8 = null)
    {
        _backend = backend;
        _kvHeads = kvHeads;
        _headDim = headDim;
        _windows = Enumerable.Range(0, layers).Select(l => windows is null ? null : windows[l]).ToArray();
        _keys = new Tensor?[layers];
        _values = new Tensor?[layers];
        _start = new int[layers];
        _count = new int[layers];
        _appended = new int[layers];
        _fp8 = fp8;
    }

    /// <summary>What the cache holds: the backend's activation type, or F8E4M3.</summary>
    public DType DType => _fp8 is null ? _backend.ActivationType : DType.F8E4M3;

    /// <summary>Rows appended to every layer (a sliding-window layer holds only the last of them once a pass is complete).</summary>
    public int Count => _appended[0];

    /// <summary>The rows a layer holds now.</summary>
    public int Held(int layer) => _count[layer];

    /// <summary>Bytes of the buffers, held rows and room for more.</summary>
    public long Bytes => _keys.Sum(k => k?.Bytes ?? 0) * 2;

    /// <summary>Bytes of the rows held, K and V, every layer.</summary>
    public long HeldBytes => _count.Sum(c => (long)c) * 2 * _kvHeads * _headDim * DType.SizeOf();

    /// <summary>
    /// The next <paramref name="rows"/> rows of the layer's keys and values, now counted as held, for the caller to
    /// fill before anything reads them: a decode step fills every sequence's new rows with one copy (<see
    /// cref="BackendOps.CopyEach"/>).
    /// </summary>
    public (Tensor Keys, Tensor Values) Claim(int layer, int rows)
    {
        MakeRoom(layer, rows);
        int at = _start[layer] + _count[layer];
        var slots = (_keys[layer]!.SliceRows(at, rows), _values[layer]!.SliceRows(at, rows));
        _count[layer] += rows;
        _appended[layer] += rows;
        return slots;
    }

    /// <summary>
    /// Drops the oldest <paramref name="rows"/> rows of a sliding-window layer, which no later query can see; gives back
    /// a buffer that has become much larger than what it holds.
    /// </summary>
    public void Forget(int layer, int rows)
    {
        if (_windows[layer] is null) throw new InvalidOperationException($"layer {layer} keeps every row; only sliding-window layers forget");
        if (rows < 0 || rows > _count[layer]) throw new ArgumentOutOfRangeException(nameof(rows), $"layer {layer} holds {_count[layer]} rows, cannot drop {rows}");
        _start[layer] += rows;
        _count[layer] -= rows;
        int held = _count[layer];
        if (held == 0)
        {
            Free(layer);
            return;
        }
        if (_keys[layer]!.Rows > 2 * (held + Headroom(held))) Resize(layer, held + Headroom(held));
    }

    public Tensor Keys(int layer) => View(layer, _keys);
    public Tensor Values(int layer) => View(layer, _values);

    // The rows held, as a view of the layer's tensor; one of no rows where nothing is held (it carries the
    // layer's FP8 scale all the same: a ring block allocated like it receives another rank's codes).
    private Tensor View(int layer, Tensor?[] tensors)
    {
        if (tensors[layer] is null) Resize(layer, 0);
        return tensors[layer]!.SliceRows(_start[layer], _count[layer]);
    }

    /// <summary>
    /// Room for <paramref name="rows"/> rows in every layer that keeps all (<see cref="Count"/> and what is coming) and an
    /// eighth more (at least 64) for what follows; a sliding-window layer gets room for what it holds and the same new rows.
    /// </summary>
    public void Reserve(int rows)
    {
        int coming = Math.Max(0, rows - Count);
        for (int layer = 0; layer < _keys.Length; layer++)
        {
            int need = _count[layer] + coming;
            if (Room(layer) < need) Resize(layer, need + Headroom(need));
        }
    }

    private static int Headroom(int rows) => Math.Max(rows / 8, 64);

    // Rows the buffer has from the held run's start on.
    private int Room(int layer) => (_keys[layer]?.Rows ?? 0) - _start[layer];

    private void MakeRoom(int layer, int rows)
    {
        int need = _count[layer] + rows;
        if (Room(layer) >= need) return;
        var old = _keys[layer];
        // A full layer grows by an eighth of its buffer; a window's run moves to a buffer of its size and an eighth.
        int capacity = _windows[layer] is not null ? need + Headroom(need)
            : old is null or { Rows: 0 } ? need : Math.Max(need, old.Rows + Headroom(old.Rows));
        Resize(layer, capacity);
    }

    private void Resize(int layer, int capacity)
    {
        _keys[layer] = Move(_keys[layer], capacity, layer, _fp8?.Keys[layer]);
        _values[layer] = Move(_values[layer], capacity, layer, _fp8?.Values[layer]);
        _start[layer] = 0;
    }

    // The held run of a buffer at the front of a new one of `capacity` rows.
    private Tensor Move(Tensor? old, int capacity, int layer, float? scale)
    {
        var t = _backend.Allocate(DType, capacity, _kvHeads, _headDim);
        t.Scale = scale ?? 1f;
        if (old is not null)
        {
            if (_count[layer] > 0) _backend.Copy(old.SliceRows(_start[layer], _count[layer]), t.SliceRows(0, _count[layer]));
            old.Dispose();
        }
        return t;
    }

    private void Free(int layer)
    {
        _keys[layer]?.Dispose();
        _values[layer]?.Dispose();
        _keys[layer] = _values[layer] = null;
        _start[layer] = 0;
    }

    public void Dispose()
    {
        foreach (var t in _keys) t?.Dispose();
        foreach (var t in _values) t?.Dispose();
    }
}
