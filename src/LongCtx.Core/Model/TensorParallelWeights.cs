using LongCtx.Tensors;

namespace LongCtx.Model;

/// <summary>
/// One tensor-parallel rank's share of a layer's weights (<see cref="TensorSlice"/>). Column-parallel
/// matrices — q, k, v, gate, up, whose output rows are heads or MLP columns — keep their rows of the slice:
/// a window into the same host memory. Row-parallel matrices — o and down, which read those heads or
/// columns — keep their input columns of the slice: a copy, since a column block is not contiguous.
/// Each rank's o and down then give a partial sum; an all-reduce over the ranks completes it, so o's bias
/// goes to rank 0 only, where it is added once. An FP8 weight keeps the scales of its share: its rows' scales, or
/// every row's scale and its columns' blocks; a row-parallel rank quantises its input slice per token with a scale of
/// its own, as vLLM's tensor-parallel FP8 layers do (see <see cref="Quantization.Fp8Linear.InputColumns"/>).
/// </summary>
public static class TensorParallelWeights
{
    /// <summary>The slice's share of <paramref name="w"/>; the column copies it makes are added to <paramref name="owners"/>, which must outlive them.</summary>
    public static LayerWeights Slice(LayerWeights w, ModelConfig c, TensorSlice s, ICollection<IDisposable> owners)
    {
        if (s.Size == 1) return w;
        int q = s.Heads(c) * c.HeadDim, kv = s.KvHeads(c) * c.HeadDim, mlp = s.Intermediate(c);
        return new LayerWeights
        {
            QProj = Rows(w.QProj, s.Rank * q, q),
            KProj = Rows(w.KProj, s.Rank * kv, kv),
            VProj = Rows(w.VProj, s.Rank * kv, kv),
            QBias = w.QBias is null ? null : Rows(w.QBias, s.Rank * q, q),
            KBias = w.KBias is null ? null : Rows(w.KBias, s.Rank * kv, kv),
            VBias = w.VBias is null ? null : Rows(w.VBias, s.Rank * kv, kv),
            OProj = Columns(w.OProj, s.Rank * q, q, owners),
            OBias = s.Rank == 0 ? w.OBias : null,
            GateProj = Rows(w.GateProj, s.Rank * mlp, mlp),
            UpProj = Rows(w.UpProj, s.Rank * mlp, mlp),
            DownProj = Columns(w.DownProj, s.Rank * mlp, mlp, owners),
            InputNorm = w.InputNorm,
            PostAttentionNorm = w.PostAttentionNorm,
            QNorm = w.QNorm,
            KNorm = w.KNorm,
            PreFeedforwardNorm = w.PreFeedforwardNorm,
            PostFeedforwardNorm = w.PostFeedforwardNorm,
        };
    }

    /// <summary>Rows [start, start+count) of a matrix, or elements of a vector: a view of the same memory.</summary>
    public static HostTensor Rows(HostTensor t, int start, int count)
    {
        long rowElements = t.Length / t.Shape[0];
        int[] shape = [count, .. t.Shape[1..]];
        return new HostTensor($"{t.Name}[{start}:{start + count}]", t.DType, shape, t.Data + (nint)(start * rowElements * t.DType.SizeOf()), t.Owner)
        {
            Fp8 = t.Fp8?.OutputRows(start, count, t.Shape[1]),
        };
    }

    /// <summary>Columns [start, start+count) of a matrix [rows, cols], copied into memory of their own.</summary>
    public static unsafe HostTensor Columns(HostTensor t, int start, int count, ICollection<IDisposable> owners)
    {
        if (t.Shape.Length != 2) throw new ArgumentException($"column slice of {t}: a matrix is needed");
        int rows = t.Shape[0], cols = t.Shape[1], size = t.DType.SizeOf();
        var buffer = new NativeBuffer((long)rows * count * size);
        owners.Add(buffer);
        var src = (byte*)t.Data + (long)start * size;
        var dst = (byte*)buffer.Pointer;
        long rowBytes = (long)count * size;
        for (int r = 0; r < rows; r++)
            Buffer.MemoryCopy(src + (long)r * cols * size, dst + r * rowBytes, rowBytes, rowBytes);
        return new HostTensor($"{t.Name}[:, {start}:{start + count}]", t.DType, [rows, count], buffer.Pointer, buffer)
        {
            Fp8 = t.Fp8?.InputColumns(start, count, rows, cols),
        };
    }
}
