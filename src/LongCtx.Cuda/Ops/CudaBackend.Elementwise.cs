using LongCtx.Backends;
using LongCtx.Cuda.Attention;
using LongCtx.Cuda.Runtime;
using LongCtx.Tensors;

namespace LongCtx.Cuda.Ops;

/// <summary>
/// The elementwise kernels of Kernels/elementwise.cu: embedding, RMSNorm, residual add, RoPE, SwiGLU and GELU-tanh GLU,
/// soft cap and scale, the LSE merges, row gathers.
/// </summary>
public sealed unsafe partial class CudaBackend
{
    public void Embedding(Tensor ids, Tensor table, Tensor output)
    {
        var o = C(output);
        if (o.Rows == 0) return;
        _device.Launch(Fn("embedding"), ((uint)o.Rows, 1), 256, 0, C(ids).Pointer, C(table).Pointer, o.Pointer, o.RowLength);
    }

    public void RmsNorm(Tensor x, Tensor weight, float eps, Tensor y, float weightOffset = 0f)
    {
        var xs = C(x);
        nint w = C(weight).Pointer, ys = C(y).Pointer;
        if (xs.Rows == 0) return;
        // Every row starts on 16 bytes when the first does and the row length is a multiple of 8.
        if (Vectorisable(xs.RowLength, xs.Pointer, w, ys))
            _device.LaunchDependent(Fn("rms_norm_vec8"), ((uint)xs.Rows, 1), 256, 0, xs.Pointer, w, ys, xs.RowLength, eps, weightOffset);
        else _device.Launch(Fn("rms_norm"), ((uint)xs.Rows, 1), 256, 0, xs.Pointer, w, ys, xs.RowLength, eps, weightOffset);
    }

    public void Add(Tensor accumulator, Tensor x)
    {
        var a = C(accumulator);
        nint xs = C(x).Pointer;
        if (a.Length == 0) return;
        if (Vectorisable(a.Length, a.Pointer, xs)) _device.Launch(Fn("add_inplace_vec8"), Grid(a.Length / 8), 256, 0, a.Pointer, xs, a.Length / 8);
        else _device.Launch(Fn("add_inplace"), Grid(a.Length), 256, 0, a.Pointer, xs, a.Length);
    }

    public void Rope(Tensor x, TokenLayout layout, RopeTable rope) => RopeTogether(C(x), null, layout, rope);

    /// <summary>q and k in one launch where rope_vec8 takes them (d/2 a multiple of 8, 16-byte rows), else one each.</summary>
    public void Rope(Tensor q, Tensor k, TokenLayout layout, RopeTable rope) => RopeTogether(C(q), C(k), layout, rope);

    private void RopeTogether(CudaTensor q, CudaTensor? k, TokenLayout layout, RopeTable rope)
    {
        int rows = q.Rows, d = q.Shape[2];
        Check(layout.Count == rows && rope.HeadDim == d && (k is null || (k.Rows == rows && k.Shape[2] == d)),
            $"Rope: {q}{(k is null ? "" : $" and {k}")} with {layout.Count} positions, table for head dim {rope.HeadDim}");
        if (rows == 0) return;
        var inv = RopeInvFreq(rope);
        nint positions = _layouts.Of(layout).Positions.Pointer;
        // rope_vec8 reads 8 of each half of a head at a time: d/2 a multiple of 8 keeps every access on 16 bytes.
        if (!Vectorisable(d / 2, q.Pointer, k?.Pointer ?? 0))
        {
            foreach (var x in k is null ? [q] : new[] { q, k })
                _device.Launch(Fn("rope"), ((uint)(((long)rows * (d / 2) + 255) / 256), 1), 256, 0, x.Pointer, positions, inv.Pointer,
                    rows, x.Shape[1], d, rope.AttentionScale);
            return;
        }
        int qHeads = q.Shape[1], kHeads = k?.Shape[1] ?? 0, heads = qHeads + kHeads;
        long rowGroups = (long)rows * (d / 16);
        // A thread per head where the rows alone would leave the GPU nearly idle (decode), else all of a row's heads
        // per thread, which computes each angle once.
        int headRun = rowGroups < RopeThreadsForWholeRows ? 1 : heads;
        long threads = rowGroups * CeilDiv(heads, headRun);
        _device.LaunchDependent(Fn("rope_vec8"), ((uint)((threads + 255) / 256), 1), 256, 0, q.Pointer, k?.Pointer ?? 0, positions, inv.Pointer,
            rows, qHeads, kHeads, d, headRun, rope.AttentionScale);
    }

    private CudaTensor RopeInvFreq(RopeTable rope)
    {
        if (!_ropeTables.TryGetValue(rope, out var inv)) _ropeTables[rope] = inv = UploadFloats(rope.InvFreq);
        return inv;
    }

    // About four threads per CUDA core of an H200 (132 SMs of 128): past this, a thread per (row, pair group) fills the GPU by itself.
    private const long RopeThreadsForWholeRows = 64 * 1024;

    public void SwiGlu(Tensor gate, Tensor up, Tensor y) => GatedUnit("swiglu", gate, up, y);

    public void GeluTanhGlu(Tensor gate, Tensor up, Tensor y) => GatedUnit("gelu_tanh_glu", gate, up, y);

    // y = act(gate) · up by the kernel of that name, or by its _vec8 form where the length and pointers allow.
    private void GatedUnit(string kernel, Tensor gate, Tensor up, Tensor y)
    {
        var g = C(gate);
        nint u = C(up).Pointer, ys = C(y).Pointer;
        if (g.Length == 0) return;
        if (Vectorisable(g.Length, g.Pointer, u, ys)) _device.Launch(Fn(kernel + "_vec8"), Grid(g.Length / 8), 256, 0, g.Pointer, u, ys, g.Length / 8);
        else _device.Launch(Fn(kernel), Grid(g.Length), 256, 0, g.Pointer, u, ys, g.Length);
    }

    public void SoftCap(Tensor x, float cap)
    {
        var xs = C(x);
        if (xs.Length == 0) return;
        if (Vectorisable(xs.Length, xs.Pointer)) _device.Launch(Fn("soft_cap_vec8"), Grid(xs.Length / 8), 256, 0, xs.Pointer, xs.Length / 8, cap);
        else _device.Launch(Fn("soft_cap"), Grid(xs.Length), 256, 0, xs.Pointer, xs.Length, cap);
    }

    public void Scale(Tensor x, float factor)
    {
        var xs = C(x);
        if (xs.Length == 0) return;
        if (Vectorisable(xs.Length, xs.Pointer)) _device.Launch(Fn("scale_vec8"), Grid(xs.Length / 8), 256, 0, xs.Pointer, xs.Length / 8, factor);
        else _device.Launch(Fn("scale"), Grid(xs.Length), 256, 0, xs.Pointer, xs.Length, factor);
    }

    public void MergeAttention(Tensor outputAccumulator, Tensor lseAccumulator, Tensor outputPart, Tensor lsePart) =>
        LseMerge.Merge(_device, C(outputAccumulator), C(lseAccumulator), C(outputPart), C(lsePart));

    public void MergeAttentionParts(Tensor parts, Tensor lses, Tensor output)
    {
        var (p, l, o) = (C(parts), C(lses), C(output));
        int d = o.Shape[^1];
        long rows = o.Length / d;
        if (rows == 0) return;
        int n = (int)(l.Length / rows);
        Check(l.Length == n * rows && p.Length == n * rows * d && p.DType == o.DType && l.DType == DType.F32, $"MergeAttentionParts: {parts} and {lses} are not parts of {output}");
        int perRow = d / 8;
        if (d % 8 == 0 && Vectorisable(d, p.Pointer, o.Pointer))
            _device.Launch(Fn("merge_attention_parts_vec8"), ((uint)((rows * perRow + 255) / 256), 1), 256, 0, p.Pointer, l.Pointer, o.Pointer, rows, d, n);
        else
            _device.Launch(Fn("merge_attention_parts"), ((uint)((rows * 32 + 255) / 256), 1), 256, 0, p.Pointer, l.Pointer, o.Pointer, rows, d, n);
    }

    public void GatherRows(Tensor source, Tensor indices, Tensor destination)
    {
        var d = C(destination);
        if (d.Length == 0) return;
        _device.Launch(Fn("gather_rows"), Grid(d.Length), 256, 0, C(source).Pointer, C(indices).Pointer, d.Pointer, (long)d.Rows, d.Shape[1], d.Shape[2]);
    }
}
