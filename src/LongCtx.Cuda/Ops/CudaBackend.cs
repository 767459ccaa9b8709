using System.Runtime.InteropServices;
using LongCtx.Backends;
using LongCtx.Cuda.Attention;
using LongCtx.Cuda.Native;
using LongCtx.Cuda.Runtime;
using LongCtx.Sampling;
using LongCtx.Tensors;
namespace LongCtx.Cuda.Ops;

/// <summary>
/// The GPU backend: bf16 activations and weights, fp32 accumulation; GEMMs through cuBLASLt, everything else
/// through the NVRTC-compiled kernels of Kernels/, attention through the paths of Attention/ (<see cref="AttentionPaths"/>).
/// Work is queued on the device's compute stream and only <see cref="Download"/> waits for it, so a layer
/// runs without host synchronisation.
/// </summary>
public sealed unsafe partial class CudaBackend : IBackend, IDeviceInfo
{
    private const string Elementwise = "elementwise.cu";
    private readonly CudaDevice _device;
    private readonly DeviceLayouts _layouts;
    private readonly Dictionary<RopeTable, CudaTensor> _ropeTables = [];

    private readonly AttentionPaths _attention;
    private readonly bool _ownGemv;

    /// <param name="settings">null: <see cref="CudaSettings.FromEnvironment"/></param>
    public CudaBackend(int ordinal, CudaSettings? settings = null)
    {
        settings ??= CudaSettings.FromEnvironment();
        _device = new CudaDevice(ordinal, settings.Runtime);
        _layouts = new DeviceLayouts(ints => (CudaTensor)Upload<int>(ints, ints.Length));
        _ownGemv = settings.OwnGemv;
        _attention = new AttentionPaths(_device, _layouts, settings.Attention);
    }

    /// <summary>The environment's settings with attention computed by <paramref name="attention"/>.</summary>
    public CudaBackend(int ordinal, AttentionImplementation attention) : this(ordinal, CudaSettings.FromEnvironment().With(attention)) { }

    internal CudaDevice Device => _device;
    public string Name => $"cuda:{_device.Ordinal} ({_device.Name})";
    public IDeviceInfo Info => this;
    public DType ActivationType => DType.BF16;
    public long PeakMemoryBytes => _device.Pool.PeakBytes;

    public static int DeviceCount() => CudaDevice.Count();

    public void MakeCurrent() => _device.MakeCurrent();

    public Tensor Allocate(DType dtype, params int[] shape) => _device.Allocate(dtype, shape, zeroed: true);

    // A pool block as it comes: whatever the tensor that had it last left there.
    public Tensor Scratch(DType dtype, params int[] shape) => CudaTensor.Allocate(_device.Pool, dtype, shape);

    public Tensor Upload<T>(ReadOnlySpan<T> data, params int[] shape) where T : unmanaged
    {
        if (typeof(T) == typeof(int))
        {
            var t = CudaTensor.Allocate(_device.Pool, DType.I32, shape);
            Check(t.Length == data.Length, $"{data.Length} values for {t}");
            CopyIn(t, MemoryMarshal.AsBytes(data));
            return t;
        }
        if (typeof(T) == typeof(float))
        {
            var t = CudaTensor.Allocate(_device.Pool, DType.BF16, shape);
            Check(t.Length == data.Length, $"{data.Length} values for {t}");
            var bf = new ushort[data.Length];
            BFloat16.FromFloat(MemoryMarshal.Cast<T, float>(data), bf);
            CopyIn(t, MemoryMarshal.AsBytes(bf.AsSpan()));
            return t;
        }
        throw new ArgumentException($"cannot upload {typeof(T).Name}");
    }

    public void Download<T>(Tensor source, Span<T> destination) where T : unmanaged
    {
        var s = C(source);
        Check(s.Length == destination.Length, $"{destination.Length} slots for {s}");
        if (typeof(T) == typeof(float) && s.DType == DType.BF16)
        {
            var bf = new ushort[s.Length];
            CopyOut(s, MemoryMarshal.AsBytes(bf.AsSpan()));
            BFloat16.ToFloat(bf, MemoryMarshal.Cast<T, float>(destination));
            return;
        }
        Check((typeof(T) == typeof(float) && s.DType == DType.F32) || (typeof(T) == typeof(int) && s.DType == DType.I32), $"cannot download {s} as {typeof(T).Name}");
        CopyOut(s, MemoryMarshal.AsBytes(destination));
    }

    public Tensor LoadWeight(HostTensor weight)
    {
        var t = CudaTensor.Allocate(_device.Pool, DType.BF16, weight.Shape);
        if (weight.DType == DType.BF16)
        {
            CopyIn(t, (void*)weight.Data, weight.Bytes);
            return t;
        }
        // F32 / F16 checkpoints are rounded to bf16 on the host, a slice at a time.
        const int chunk = 1 << 22;
        var buffer = new ushort[chunk];
        var f = new float[chunk];
        for (long start = 0; start < weight.Length; start += chunk)
        {
            int n = (int)Math.Min(chunk, weight.Length - start);
            if (weight.DType == DType.F32) new ReadOnlySpan<float>((float*)weight.Data + start, n).CopyTo(f);
            else System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>((Half*)weight.Data + start, n), f.AsSpan(0, n));
            BFloat16.FromFloat(f.AsSpan(0, n), buffer.AsSpan(0, n));
            fixed (ushort* b = buffer)
                CudaDriver.Check(CudaDriver.cuMemcpyHtoDAsync(t.Pointer + (nint)(start * 2), b, (nuint)(n * 2), _device.ComputeStream), "uploading a weight");
            _device.Synchronize();
        }
        return t;
    }

    public void Copy(Tensor source, Tensor destination) => _device.Copy(C(source), C(destination));

    /// <summary>
    /// Small copies (a decode step's K and V rows of every sequence into its cache) as one kernel launched as a
    /// dependent, up to <see cref="CopyListArgument.MaxCopies"/> at a time: a cuMemcpy between two programmatic
    /// launches would make the next kernel wait for the copy's launch. Larger copies, and copies that are not whole
    /// 16-byte words on 16-byte boundaries, go through <see cref="Copy"/>.
    /// </summary>
    public void CopyEach(params ReadOnlySpan<(Tensor Source, Tensor Destination)> copies)
    {
        var list = new CopyListArgument();
        foreach (var (source, destination) in copies)
        {
            var (s, d) = (C(source), C(destination));
            Check(s.Bytes == d.Bytes && s.DType == d.DType, $"CopyEach: {s} into {d}");
            if (s.Bytes == 0) continue;
            if (s.Bytes > SmallCopyBytes || s.Bytes % 16 != 0 || s.Pointer % 16 != 0 || d.Pointer % 16 != 0)
            {
                Copy(source, destination);
                continue;
            }
            if (list.Count == CopyListArgument.MaxCopies)
            {
                LaunchCopyList(list);
                list = new CopyListArgument();
            }
            list.Add(s.Pointer, d.Pointer, (int)(s.Bytes / 16));
        }
        if (list.Count > 0) LaunchCopyList(list);
    }

    private void LaunchCopyList(CopyListArgument list)
    {
        uint blocks = (uint)CeilDiv(list.Words, 256);
        nint byValue = (nint)(&list); // the driver copies the argument at the launch
        _device.Timed(CudaDevice.Copies, () => _device.LaunchDependentWithStruct(Fn("copy_list"), (blocks, 1, 1), 256, 0, byValue));
    }

    /// <summary>The largest copy <see cref="CopyEach"/> takes into its kernel (a batch of decode rows is a few KB).</summary>
    private const long SmallCopyBytes = 1 << 20;

    public void Embedding(Tensor ids, Tensor table, Tensor output)
    {
        var o = C(output);
        if (o.Rows == 0) return;
        _device.Launch(Fn("embedding"), ((uint)o.Rows, 1), 256, 0, C(ids).Pointer, C(table).Pointer, o.Pointer, o.RowLength);
    }

    public void RmsNorm(Tensor x, Tensor weight, float eps, Tensor y)
    {
        var xs = C(x);
        nint w = C(weight).Pointer, ys = C(y).Pointer;
        if (xs.Rows == 0) return;
        // Every row starts on 16 bytes when the first does and the row length is a multiple of 8.
        if (Vectorisable(xs.RowLength, xs.Pointer, w, ys)) _device.LaunchDependent(Fn("rms_norm_vec8"), ((uint)xs.Rows, 1), 256, 0, xs.Pointer, w, ys, xs.RowLength, eps);
        else _device.Launch(Fn("rms_norm"), ((uint)xs.Rows, 1), 256, 0, xs.Pointer, w, ys, xs.RowLength, eps);
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

    public void SwiGlu(Tensor gate, Tensor up, Tensor y)
    {
        var g = C(gate);
        nint u = C(up).Pointer, ys = C(y).Pointer;
        if (g.Length == 0) return;
        if (Vectorisable(g.Length, g.Pointer, u, ys)) _device.Launch(Fn("swiglu_vec8"), Grid(g.Length / 8), 256, 0, g.Pointer, u, ys, g.Length / 8);
        else _device.Launch(Fn("swiglu"), Grid(g.Length), 256, 0, g.Pointer, u, ys, g.Length);
    }

    public void Attention(Tensor q, TokenLayout queries, Tensor k, Tensor v, TokenLayout keys, float scale, Tensor output, Tensor lse)
    {
        var qs = C(q);
        var ks = C(k);
        int tq = qs.Rows, tk = ks.Rows, heads = qs.Shape[1], d = qs.Shape[2], kvHeads = ks.Shape[1];
        Check(queries.Count == tq && keys.Count == tk && ks.Shape[2] == d && heads % kvHeads == 0, $"Attention: q {qs}, k {ks}");
        if (tq == 0) return;
        if (d % 16 != 0 || d > 256) throw new LongCtxException($"head dimension {d} is not supported by the CUDA attention kernel (a multiple of 16 up to 256)");
        if (tk == 0)
        {
            // Nothing to see: output 0, LSE -inf.
            CudaDriver.Check(CudaDriver.cuMemsetD8Async(C(output).Pointer, 0, (nuint)output.Bytes, _device.ComputeStream), "cuMemsetD8Async");
            Fill(C(lse), float.NegativeInfinity);
            return;
        }
        _attention.Run(new AttentionCall(qs, queries, ks, C(v), keys, scale, C(output), C(lse)));
    }

    /// <summary>
    /// Runs of consecutive parts that the decode kernels take in one launch each (a batch of 8 sequences decoding one
    /// token each: one launch a layer, not 8); any other part through <see cref="Attention"/>.
    /// </summary>
    public void AttentionEach(Tensor q, Tensor output, Tensor lse, float scale, params ReadOnlySpan<AttentionPart> parts)
    {
        var (qs, os, ls) = (C(q), C(output), C(lse));
        for (int i = 0; i < parts.Length;)
        {
            int taken = _attention.RunDecodeParts(qs, os, ls, scale, parts, i);
            if (taken > 0)
            {
                i += taken;
                continue;
            }
            var p = parts[i++];
            int n = p.Queries.Count;
            Attention(q.SliceRows(p.QueryRow, n), p.Queries, p.K, p.V, p.Keys, scale, output.SliceRows(p.QueryRow, n), lse.SliceRows(p.QueryRow, n));
        }
    }

    /// <summary>Which attention paths and settings a call runs with; asking for cuDNN loads it and fails if it cannot.</summary>
    public AttentionSettings AttentionSettings
    {
        get => _attention.Settings;
        set => _attention.Settings = value;
    }

    internal AttentionPaths AttentionPaths => _attention;

    /// <summary>Which attention implementation the calls so far used, and why cuDNN did not take the others.</summary>
    public string? AttentionReport() => _attention.Report(Name);

    /// <summary>Kernels/draw_tokens.cu, a block a row and up to 32 rows a launch; only the tokens come back.</summary>
    public unsafe void DrawTokens(Tensor x, ReadOnlySpan<TokenDraw> draws, Span<int> result)
    {
        var xs = C(x);
        Check(xs.DType == DType.BF16 && result.Length == xs.Rows && draws.Length == xs.Rows, $"DrawTokens: {xs}, {draws.Length} draws into {result.Length} tokens");
        if (xs.Rows == 0) return;
        using var tokens = (CudaTensor)Scratch(DType.I32, xs.Rows);
        var function = _device.Function("draw_tokens.cu", "draw_tokens");
        for (int start = 0; start < xs.Rows; start += TokenDrawsArgument.MaxRows)
        {
            int rows = Math.Min(TokenDrawsArgument.MaxRows, xs.Rows - start);
            var argument = new TokenDrawsArgument(draws.Slice(start, rows));
            _device.LaunchDependentWithStruct(function, ((uint)rows, 1, 1), 1024, 0, (nint)(&argument),
                xs.Pointer + (nint)start * xs.RowLength * sizeof(ushort), tokens.Pointer + start * sizeof(int), xs.RowLength);
        }
        Download<int>(tokens, result);
    }

    /// <summary>
    /// Kernels/token_logprobs.cu, a block a row; only the logprobs and the top ids come back, in one download (one
    /// wait for the GPU): a row of 1 + 2 · top ints, the token's logprob, the top ids and their logprobs (floats as
    /// their bits).
    /// </summary>
    public PositionLogprobs[] Logprobs(Tensor x, ReadOnlySpan<int> tokens, int top)
    {
        var xs = C(x);
        int rows = xs.Rows, n = xs.RowLength;
        if (xs.DType != DType.BF16 || tokens.Length != rows || top is < 0 or > Sampling.Logprobs.MaxTop)
            throw new LongCtxException($"Logprobs: {tokens.Length} tokens and the top {top} of logits {xs} (bf16, a token a row, top 0 to {Sampling.Logprobs.MaxTop})");
        foreach (int token in tokens)
            if ((uint)token >= (uint)n) throw new LongCtxException($"Logprobs: token {token} is outside the vocabulary of {n}");
        if (rows == 0) return [];
        int stride = 1 + 2 * top;
        using var ids = (CudaTensor)Upload<int>(tokens, rows);
        using var figures = (CudaTensor)Scratch(DType.I32, rows, stride);
        _device.LaunchDependent(_device.Function("token_logprobs.cu", "token_logprobs"), ((uint)rows, 1), 1024, 0,
            xs.Pointer, ids.Pointer, figures.Pointer, n, top);
        var all = new int[rows * stride];
        Download<int>(figures, all);
        int count = Math.Min(top, n); // as Sampling.Logprobs.Of lists
        var result = new PositionLogprobs[rows];
        for (int r = 0; r < rows; r++)
        {
            var row = all.AsSpan(r * stride, stride);
            var most = new TopLogprob[count];
            for (int j = 0; j < count; j++) most[j] = new TopLogprob(row[1 + j], BitConverter.Int32BitsToSingle(row[1 + top + j]));
            result[r] = new PositionLogprobs(BitConverter.Int32BitsToSingle(row[0]), most);
        }
        return result;
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

    /// <summary>Selected on the GPU (Kernels/top_rows.cu, a block per head): the same rows as the host's selection.</summary>
    public void TopRowsPerHead(Tensor scores, int count, Tensor rows)
    {
        var (s, r) = (C(scores), C(rows));
        int n = s.Rows, heads = s.Shape[1];
        Check(s.DType is DType.F32 or DType.BF16 && r.DType == DType.I32 && r.Rows == count && r.Shape[1] == heads && count > 0 && count <= n,
            $"TopRowsPerHead: {count} rows of scores {s} into {r}");
        _device.Launch(_device.Function("top_rows.cu", "top_rows"), ((uint)heads, 1), 1024, 0, s.Pointer, s.DType == DType.BF16 ? 1 : 0, r.Pointer, n, heads, count);
    }

    public void KeyAttentionMass(Tensor q, TokenLayout queries, Tensor k, TokenLayout keys, float scale, Tensor mass)
    {
        var qs = C(q);
        var ks = C(k);
        int tq = qs.Rows, tk = ks.Rows, heads = qs.Shape[1], d = qs.Shape[2], kvHeads = ks.Shape[1];
        Check(mass.Length == (long)tk * kvHeads && queries.Count == tq && keys.Count == tk, $"KeyAttentionMass: q {qs}, k {ks}, mass {mass}");
        Check(d % 16 == 0 && d <= 256 && ks.Pointer % 16 == 0, $"KeyAttentionMass: keys {ks} must be 16-byte aligned rows of a head dimension that is a multiple of 16 up to 256");
        if (tk == 0) return;
        // The flash kernel's LSE normalises each query row; a second pass sums exp(score − LSE) per key.
        using var output = Allocate(ActivationType, tq, heads, d);
        using var lse = Allocate(DType.F32, tq, heads);
        Attention(q, queries, k, k, keys, scale, output, lse);
        var ql = _layouts.Of(queries);
        var kl = _layouts.Of(keys);
        // Kernels/key_attention_mass.cu: a block of 128 threads per 64 keys of one KV head.
        _device.Launch(_device.Function("key_attention_mass.cu", "key_attention_mass"), ((uint)((tk + 63) / 64), (uint)kvHeads), 128, 0, qs.Pointer, ks.Pointer,
            ql.SeqIds.Pointer, ql.Positions.Pointer, kl.SeqIds.Pointer, kl.Positions.Pointer, C(lse).Pointer, C(mass).Pointer,
            tq, tk, heads, kvHeads, d, scale);
    }

    public void Synchronize() => _device.Synchronize();

    /// <summary>Free on the GPU plus what the pool keeps cached. The calling thread must have the context current.</summary>
    public long AvailableMemoryBytes()
    {
        CudaDriver.Check(CudaDriver.cuMemGetInfo(out var free, out _), "cuMemGetInfo");
        return (long)free + _device.Pool.CachedBytes;
    }

    /// <summary>The GPU's memory. The calling thread must have the context current.</summary>
    public long TotalMemoryBytes
    {
        get
        {
            CudaDriver.Check(CudaDriver.cuMemGetInfo(out _, out var total), "cuMemGetInfo");
            return (long)total;
        }
    }

    /// <summary>Starts recording the time split (GEMM, attention, communication wait) of the compute stream.</summary>
    public void StartProfiling() => _device.Profiler = new StreamProfiler(_device.ComputeStream);

    /// <summary>Milliseconds per category since <see cref="StartProfiling"/>, and stops recording.</summary>
    public IReadOnlyDictionary<string, double> StopProfiling()
    {
        var totals = _device.Profiler?.Collect() ?? [];
        _device.Profiler = null;
        return totals;
    }

    public void Dispose()
    {
        foreach (var t in _ropeTables.Values) t.Dispose();
        _attention.Dispose();
        _device.Dispose();
    }

    private void Fill(CudaTensor t, float value)
    {
        var host = new float[t.Length];
        Array.Fill(host, value);
        CopyIn(t, MemoryMarshal.AsBytes(host.AsSpan()));
    }

    internal CudaTensor UploadFloats(float[] values)
    {
        var t = CudaTensor.Allocate(_device.Pool, DType.F32, [values.Length]);
        CopyIn(t, MemoryMarshal.AsBytes(values.AsSpan()));
        return t;
    }

    // Pageable host memory: the driver stages the bytes before returning, so the source may go at once.
    private void CopyIn(CudaTensor t, ReadOnlySpan<byte> bytes)
    {
        fixed (byte* p = bytes) CopyIn(t, p, bytes.Length);
    }

    private void CopyIn(CudaTensor t, void* source, long bytes)
    {
        if (bytes > 0) CudaDriver.Check(CudaDriver.cuMemcpyHtoDAsync(t.Pointer, source, (nuint)bytes, _device.ComputeStream), "cuMemcpyHtoDAsync");
    }

    private void CopyOut(CudaTensor t, Span<byte> bytes)
    {
        if (bytes.Length == 0) return;
        fixed (byte* p = bytes)
            CudaDriver.Check(CudaDriver.cuMemcpyDtoHAsync(p, t.Pointer, (nuint)bytes.Length, _device.ComputeStream), "cuMemcpyDtoHAsync");
        _device.Synchronize();
    }

    private nint Fn(string kernel) => _device.Function(Elementwise, kernel);

    private static (uint, uint) Grid(long n) => Launches.Grid(n);

    private static bool Vectorisable(long length, params ReadOnlySpan<nint> pointers) => Launches.Vectorisable(length, pointers);

    private static int CeilDiv(int a, int b) => Launches.CeilDiv(a, b);

    private static CudaTensor C(Tensor t) => t as CudaTensor ?? throw new ArgumentException($"{t} is not a CUDA tensor");

    private static void Check(bool ok, string message)
    {
        if (!ok) throw new ArgumentException(message);
    }
}
