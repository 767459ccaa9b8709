using System.Runtime.InteropServices;
using LongCtx.Quantization;
using LongCtx.Tensors;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace LongCtx.Backends.Cpu;

/// <summary>
/// The reference backend: float32 activations in native memory, weights read in place from the mapped
/// checkpoint (BF16/F16/F32, or F8E4M3 codes with their scales), kernels vectorised with System.Numerics and spread
/// over <see cref="Threads"/> worker threads. Every operation is synchronous. FP8 follows bench/reference/FP8.md to
/// the bit: quantised linear layers (<see cref="CpuFp8Linear"/>) and the FP8 KV cache (<see cref="Copy"/> into it,
/// <see cref="Attention"/> reading it).
/// </summary>
public sealed unsafe class CpuBackend : IBackend, IDeviceInfo
{
    private readonly ParallelOptions _parallel;
    private readonly IQuantizationHook? _hook;

    /// <param name="hook">sees every FP8 quantisation (tests)</param>
    public CpuBackend(int? threads = null, IQuantizationHook? hook = null)
    {
        RequireThreads(threads);
        Threads = threads ?? Environment.ProcessorCount;
        _parallel = new ParallelOptions { MaxDegreeOfParallelism = Threads };
        _hook = hook;
    }

    /// <summary>A thread count given must be 1 or more; none means every core.</summary>
    public static void RequireThreads(int? threads)
    {
        if (threads < 1) throw new SettingException(Setting.Threads, "must be 1 or more (default: every core)", threads);
    }

    public int Threads { get; }
    public string Name => "cpu";
    public IDeviceInfo Info => this;
    public long TotalMemoryBytes => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
    public long AvailableMemoryBytes() => Math.Max(0, TotalMemoryBytes - GC.GetGCMemoryInfo().MemoryLoadBytes);

    /// <summary>The CPU keeps no profile: its operations are synchronous, so a wall clock around a call says it all.</summary>
    public void StartProfiling() { }

    public IReadOnlyDictionary<string, double> StopProfiling() => new Dictionary<string, double>();

    public string? AttentionReport() => null;
    public DType ActivationType => DType.F32;

    public Tensor Allocate(DType dtype, params int[] shape) => CpuTensor.Allocate(dtype, shape);

    // Clearing host memory costs little next to the CPU's kernels; scratch is simply zeroed too.
    public Tensor Scratch(DType dtype, params int[] shape) => CpuTensor.Allocate(dtype, shape);

    public Tensor Upload<T>(ReadOnlySpan<T> data, params int[] shape) where T : unmanaged
    {
        var dtype = typeof(T) == typeof(float) ? DType.F32 : typeof(T) == typeof(int) ? DType.I32
            : throw new ArgumentException($"cannot upload {typeof(T).Name}");
        var t = CpuTensor.Allocate(dtype, shape);
        if (t.Length != data.Length) throw new ArgumentException($"{data.Length} values for shape {t}");
        MemoryMarshal.AsBytes(data).CopyTo(t.RawBytes);
        return t;
    }

    public void Download<T>(Tensor source, Span<T> destination) where T : unmanaged
    {
        var s = C(source);
        if (s.Length != destination.Length) throw new ArgumentException($"{destination.Length} slots for {s}");
        s.RawBytes.CopyTo(MemoryMarshal.AsBytes(destination));
    }

    // The mapping outlives the replica (ModelWeights owns it), so the tensor just points into it.
    public Tensor LoadWeight(HostTensor weight)
    {
        if (weight.DType == DType.F8E4M3 && weight.Fp8 is null) throw new ArgumentException($"{weight} is F8E4M3 without its scales");
        return CpuTensor.Wrap(weight.DType, weight.Shape, weight.Data, weight.Fp8, weight.Name);
    }

    /// <summary>A copy, or into an F8E4M3 tensor (the FP8 KV cache) the quantisation e4m3(f32(x / destination.Scale)).</summary>
    public void Copy(Tensor source, Tensor destination)
    {
        var s = C(source);
        var d = C(destination);
        if (s.DType == DType.F32 && d.DType == DType.F8E4M3 && s.Length == d.Length)
        {
            var codes = new Span<byte>(d.Data, checked((int)d.Length));
            E4M3.Quantize(s.F32, d.Scale, codes);
            _hook?.KvCache(s.F32, s.Rows, d.Scale, codes);
            return;
        }
        if (s.Bytes != d.Bytes || s.DType != d.DType) throw new ArgumentException($"Copy: {s} into {d}");
        Buffer.MemoryCopy(s.Data, d.Data, d.Bytes, s.Bytes);
    }

    public void Embedding(Tensor ids, Tensor table, Tensor output)
    {
        var idx = C(ids).I32;
        var tab = C(table);
        var o = C(output);
        int vocab = tab.Rows;
        for (int t = 0; t < idx.Length; t++)
        {
            int id = idx[t];
            if ((uint)id >= (uint)vocab) throw new LongCtxException($"token id {id} is outside the vocabulary (0..{vocab - 1})");
            WeightRows.Read(tab, (long)id * tab.RowLength, o.Row(t));
        }
    }

    public void Linear(Tensor x, Tensor weight, Tensor? bias, Tensor y)
    {
        var w = C(weight);
        if (w.Fp8 is not null) CpuFp8Linear.Run(C(x), w, bias is null ? null : C(bias), C(y), accumulate: false, _hook, _parallel);
        else CpuLinear.Run(C(x), w, bias is null ? null : C(bias), C(y), _parallel);
    }

    public void LinearAccumulate(Tensor x, Tensor weight, Tensor y)
    {
        var w = C(weight);
        if (w.Fp8 is not null) CpuFp8Linear.Run(C(x), w, null, C(y), accumulate: true, _hook, _parallel);
        else CpuLinear.Accumulate(C(x), w, C(y), _parallel);
    }

    public void RmsNorm(Tensor x, Tensor weight, float eps, Tensor y, float weightOffset = 0f)
    {
        var xs = C(x);
        var ys = C(y);
        var w = new float[xs.RowLength];
        WeightRows.Read(C(weight), 0, w);
        if (weightOffset != 0f) TensorPrimitives.Add(w, weightOffset, w);
        System.Threading.Tasks.Parallel.For(0, xs.Rows, _parallel, r =>
        {
            var row = xs.Row(r);
            // Sum of squares in double: for wide rows a float sum loses digits the reference keeps.
            double ss = 0;
            foreach (float v in row) ss += (double)v * v;
            float inv = (float)(1.0 / Math.Sqrt(ss / row.Length + eps));
            var o = ys.Row(r);
            TensorPrimitives.Multiply(row, inv, o);
            TensorPrimitives.Multiply(o, w, o);
        });
    }

    public void Add(Tensor accumulator, Tensor x)
    {
        var a = C(accumulator).F32;
        TensorPrimitives.Add(a, C(x).F32, a);
    }

    public void Rope(Tensor x, TokenLayout layout, RopeTable rope)
    {
        var xs = C(x);
        int t = xs.Rows, heads = xs.Shape[1], d = xs.Shape[2], half = d / 2;
        if (layout.Count != t || rope.HeadDim != d) throw new ArgumentException($"Rope: {xs} with {layout.Count} positions, table for head dim {rope.HeadDim}");
        float* p = (float*)xs.Data;
        System.Threading.Tasks.Parallel.For(0, t, _parallel, () => (new float[half], new float[half]), (i, _, buf) =>
        {
            var (cos, sin) = buf;
            double pos = layout.Positions[i];
            for (int f = 0; f < half; f++)
            {
                // The angle in double: positions reach 10^6 and a float product would lose the phase.
                double angle = pos * rope.InvFreq[f];
                cos[f] = (float)Math.Cos(angle) * rope.AttentionScale;
                sin[f] = (float)Math.Sin(angle) * rope.AttentionScale;
            }
            for (int h = 0; h < heads; h++)
            {
                float* v = p + ((long)i * heads + h) * d;
                // rotate_half: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin), x1 = first half, x2 = second half.
                for (int f = 0; f < half; f++)
                {
                    float a = v[f], b = v[f + half];
                    v[f] = a * cos[f] - b * sin[f];
                    v[f + half] = b * cos[f] + a * sin[f];
                }
            }
            return buf;
        }, _ => { });
    }

    public void SwiGlu(Tensor gate, Tensor up, Tensor y)
    {
        float* g = (float*)C(gate).Data, u = (float*)C(up).Data, o = (float*)C(y).Data;
        long n = gate.Length;
        if (up.Length != n || y.Length != n) throw new ArgumentException($"SwiGlu: gate {gate}, up {up}, y {y}");
        const int chunk = 1 << 14;
        System.Threading.Tasks.Parallel.For(0, (n + chunk - 1) / chunk, _parallel, c =>
        {
            long start = c * chunk, end = Math.Min(n, start + chunk);
            // silu(g) * u = g / (1 + exp(-g)) * u; y may alias gate.
            for (long i = start; i < end; i++) o[i] = g[i] / (1f + MathF.Exp(-g[i])) * u[i];
        });
    }

    public void GeluTanhGlu(Tensor gate, Tensor up, Tensor y)
    {
        float* g = (float*)C(gate).Data, u = (float*)C(up).Data, o = (float*)C(y).Data;
        long n = gate.Length;
        if (up.Length != n || y.Length != n) throw new ArgumentException($"GeluTanhGlu: gate {gate}, up {up}, y {y}");
        const int chunk = 1 << 14;
        const float c = 0.7978845608028654f; // sqrt(2/π)
        System.Threading.Tasks.Parallel.For(0, (n + chunk - 1) / chunk, _parallel, i =>
        {
            long start = i * chunk, end = Math.Min(n, start + chunk);
            for (long j = start; j < end; j++)
            {
                float x = g[j];
                o[j] = 0.5f * x * (1f + MathF.Tanh(c * (x + 0.044715f * x * x * x))) * u[j];
            }
        });
    }

    public void SoftCap(Tensor x, float cap)
    {
        var v = C(x).F32;
        TensorPrimitives.Divide(v, cap, v);
        TensorPrimitives.Tanh(v, v);
        TensorPrimitives.Multiply(v, cap, v);
    }

    public void Scale(Tensor x, float factor)
    {
        var v = C(x).F32;
        TensorPrimitives.Multiply(v, factor, v);
    }


    /// <summary>k and v may be the FP8 cache's codes (<see cref="CpuAttention"/> reads them a key tile at a time).</summary>
    public void Attention(Tensor q, TokenLayout queries, Tensor k, Tensor v, TokenLayout keys, AttentionRule rule, Tensor output, Tensor lse) =>
        CpuAttention.Run(C(q), queries, C(k), C(v), keys, rule, C(output), C(lse), _parallel);

    public void MergeAttentionParts(Tensor parts, Tensor lses, Tensor output)
    {
        var (p, o) = (C(parts), C(output));
        var l = C(lses).F32;
        int rows = (int)(o.Length / Math.Max(1, o.Shape[^1])), d = o.Shape[^1], n = l.Length / Math.Max(1, rows);
        if (l.Length != n * rows || p.Length != (long)n * rows * d) throw new ArgumentException($"MergeAttentionParts: {parts} and {lses} are not parts of {output}");
        float* src = (float*)p.Data, dst = (float*)o.Data;
        for (int i = 0; i < rows; i++)
        {
            var row = new Span<float>(dst + (long)i * d, d);
            row.Clear();
            float m = float.NegativeInfinity;
            for (int j = 0; j < n; j++) m = Math.Max(m, l[j * rows + i]);
            if (float.IsNegativeInfinity(m)) continue;
            float sum = 0;
            for (int j = 0; j < n; j++) sum += MathF.Exp(l[j * rows + i] - m);
            for (int j = 0; j < n; j++)
            {
                float w = MathF.Exp(l[j * rows + i] - m) / sum;
                if (w != 0) TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(src + ((long)j * rows + i) * d, d), w, row, row);
            }
        }
    }

    public void MergeAttention(Tensor outputAccumulator, Tensor lseAccumulator, Tensor outputPart, Tensor lsePart)
    {
        var oa = C(outputAccumulator);
        var la = C(lseAccumulator).F32;
        var op = C(outputPart);
        var lp = C(lsePart).F32;
        int rows = la.Length, d = (int)(oa.Length / Math.Max(1, rows));
        float* a = (float*)oa.Data, p = (float*)op.Data;
        for (int i = 0; i < rows; i++)
        {
            float x = la[i], y = lp[i];
            if (float.IsNegativeInfinity(y)) continue;
            var acc = new Span<float>(a + (long)i * d, d);
            var part = new ReadOnlySpan<float>(p + (long)i * d, d);
            if (float.IsNegativeInfinity(x))
            {
                part.CopyTo(acc);
                la[i] = y;
                continue;
            }
            float m = Math.Max(x, y);
            float wa = MathF.Exp(x - m), wp = MathF.Exp(y - m), sum = wa + wp;
            TensorPrimitives.Multiply(acc, wa / sum, acc);
            TensorPrimitives.MultiplyAdd(part, wp / sum, acc, acc);
            la[i] = m + MathF.Log(sum);
        }
    }

    public void GatherRows(Tensor source, Tensor indices, Tensor destination)
    {
        var s = C(source);
        var idx = C(indices).I32;
        var d = C(destination);
        int heads = s.Shape[1], dim = s.Shape[2], n = d.Rows;
        if (d.Shape[1] != heads || d.Shape[2] != dim || idx.Length != n * heads || s.DType != DType.F32 || d.DType != DType.F32)
            throw new ArgumentException($"GatherRows: source {s}, {idx.Length} indices, destination {d}");
        float* sp = (float*)s.Data, dp = (float*)d.Data;
        for (int i = 0; i < n; i++)
            for (int h = 0; h < heads; h++)
            {
                int row = idx[i * heads + h];
                if ((uint)row >= (uint)s.Rows) throw new ArgumentOutOfRangeException(nameof(indices), $"row {row} of {s.Rows}");
                new ReadOnlySpan<float>(sp + ((long)row * heads + h) * dim, dim).CopyTo(new Span<float>(dp + ((long)i * heads + h) * dim, dim));
            }
    }

    public void Dispose() { }

    private static CpuTensor C(Tensor t) => t as CpuTensor ?? throw new ArgumentException($"{t} is not a CPU tensor");
}
