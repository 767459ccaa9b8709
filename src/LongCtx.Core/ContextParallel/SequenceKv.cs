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
/// With <see cref="Fp8KvScales"/> the cache holds e4m3 codes (a row stored by copying activations into it quantises
/// them with the layer's scale, and attention reads code · scale): a quarter of the CPU's float32 bytes, half the GPU's bf16.
/// </summary>
public sealed class SequenceKv : IDisposable
{
    private readonly IBackend _backend;
    private readonly int _kvHeads, _headDim;
    private readonly Tensor?[] _keys, _values;
    private readonly int[] _count;
    private readonly Fp8KvScales? _fp8;

    public SequenceKv(IBackend backend, int layers, int kvHeads, int headDim, Fp8KvScales? fp8 = null)
    {
        _backend = backend;
        _kvHeads = kvHeads;
        _headDim = headDim;
        _keys = new Tensor?[layers];
        _values = new Tensor?[layers];
        _count = new int[layers];
        _fp8 = fp8;
    }

    /// <summary>What the cache holds: the backend's activation type, or F8E4M3.</summary>
    public DType DType => _fp8 is null ? _backend.ActivationType : DType.F8E4M3;

    /// <summary>Rows held in layer 0 (every layer holds the same rows once a pass is complete).</summary>
    public int Count => _count[0];

    public long Bytes => _keys.Sum(k => k?.Bytes ?? 0) * 2;

    /// <summary>
    /// The next <paramref name="rows"/> rows of the layer's keys and values, now counted as held, for the caller to
    /// fill before anything reads them: a decode step fills every sequence's new rows with one copy (<see
    /// cref="IBackend.CopyEach"/>).
    /// </summary>
    public (Tensor Keys, Tensor Values) Claim(int layer, int rows)
    {
        MakeRoom(layer, _count[layer] + rows);
        var slots = (_keys[layer]!.SliceRows(_count[layer], rows), _values[layer]!.SliceRows(_count[layer], rows));
        _count[layer] += rows;
        return slots;
    }

    public Tensor Keys(int layer) => Held(layer, _keys);
    public Tensor Values(int layer) => Held(layer, _values);

    // The rows held, as a view of the layer's tensor; one of no rows where nothing is held yet (it carries the
    // layer's FP8 scale all the same: a ring block allocated like it receives another rank's codes).
    private Tensor Held(int layer, Tensor?[] tensors)
    {
        if (tensors[layer] is null) Resize(layer, 0);
        return tensors[layer]!.SliceRows(0, _count[layer]);
    }

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
        Resize(layer, Math.Max(rows, old is null or { Rows: 0 } ? rows : old.Rows + Headroom(old.Rows)));
    }

    private void Resize(int layer, int capacity)
    {
        _keys[layer] = Grow(_keys[layer], capacity, _count[layer], _fp8?.Keys[layer]);
        _values[layer] = Grow(_values[layer], capacity, _count[layer], _fp8?.Values[layer]);
    }

    private Tensor Grow(Tensor? old, int capacity, int used, float? scale)
    {
        var t = _backend.Allocate(DType, capacity, _kvHeads, _headDim);
        t.Scale = scale ?? 1f;
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
    }
}
