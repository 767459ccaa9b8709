using LongCtx.Cuda.Native;
using LongCtx.Cuda.Runtime;
using LongCtx.Quantization;
using LongCtx.Tensors;

namespace LongCtx.Cuda.Ops;

/// <summary>
/// FP8 projections: the input quantised as the weight's scheme says (Kernels/fp8_quant.cu, the CPU backend's codes and
/// scales bit for bit given the same bf16 input; fused into the RMSNorm before it where <see cref="RuntimeSettings.Fp8FusedNorm"/>),
/// then cuBLASLt's FP8 GEMM with per-row × per-token or 128 × 128-block × per-token-group scales for prefill-sized
/// inputs, Kernels/gemv_fp8.cu for up to 16 rows. The projections of one input (q, k, v; gate, up) share its quantisation.
/// </summary>
public sealed unsafe partial class CudaBackend
{
    private const string Fp8Source = "fp8_quant.cu", GemvFp8Source = "gemv_fp8.cu";
    private const int GemvFp8MaxRows = 16, GemvFp8WarpsPerBlock = 8;
    // Rows per quantize_rows block (a warp each) and (row, group) items per quantize_groups block.
    private const int QuantizeWarps = 8;

    private static bool IsFp8(Tensor weight) => weight is CudaTensor { Fp8: not null };

    /// <summary>An FP8 weight: its codes as they are, its scales laid out as its GEMMs read them (<see cref="Fp8DeviceWeight"/>).</summary>
    private CudaTensor LoadFp8Weight(HostTensor weight)
    {
        var f = weight.Fp8 ?? throw new ArgumentException($"{weight} is F8E4M3 without its scales");
        int n = weight.Shape[0], k = weight.Shape[1];
        if (k % 16 != 0)
            throw new LongCtxException($"{weight.Name}: an FP8 weight on the GPU needs rows of a multiple of 16 codes, not {k}");
        var codes = CudaTensor.Allocate(_device.Pool, DType.F8E4M3, weight.Shape);
        CopyIn(codes, (void*)weight.Data, weight.Bytes);
        float[] scales;
        int stride = 0;
        if (f.WeightScaling == Fp8WeightScaling.Block)
        {
            int blocks = k / Quantization.Fp8Linear.BlockSize;
            stride = (blocks + 3) / 4 * 4;
            scales = new float[n / Quantization.Fp8Linear.BlockSize * stride];
            for (int p = 0; p < n / Quantization.Fp8Linear.BlockSize; p++)
                for (int b = 0; b < blocks; b++) scales[p * stride + b] = f.WeightScales[p * blocks + b];
        }
        else
        {
            scales = new float[n];
            for (int i = 0; i < n; i++) scales[i] = f.WeightScale(i, 0, 1);
        }
        codes.Fp8 = new Fp8DeviceWeight(f, UploadFloats(scales), stride);
        return codes;
    }

    /// <summary>
    /// A quantised input: codes [Padded, K] and scales — per token [Padded], or per group [K / 128, Padded] — where Padded
    /// is the rows rounded up to 4 (cuBLASLt's scaled GEMMs ask it), the rows past <see cref="Rows"/> zero.
    /// </summary>
    internal sealed class Fp8Input(CudaTensor codes, CudaTensor scales, int rows, Fp8Activations scheme) : IDisposable
    {
        public CudaTensor Codes => codes;
        public CudaTensor Scales => scales;
        public int Rows => rows;
        public int Padded => codes.Rows;
        public Fp8Activations Scheme => scheme;

        public void Dispose()
        {
            codes.Dispose();
            scales.Dispose();
        }
    }

    private static int SchemeCode(Fp8ActivationScaling s) => s switch
    {
        Fp8ActivationScaling.PerToken => 0,
        Fp8ActivationScaling.PerTokenBounded => 1,
        Fp8ActivationScaling.Static => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(s), s, "per-group inputs have their own kernel"),
    };

    /// <summary>
    /// x [T, K] (bf16) quantised as <paramref name="scheme"/> says; with <paramref name="norm"/>, RMSNorm(x) quantised in
    /// the same pass (rms_norm_quant: the codes of the norm's bf16 output).
    /// </summary>
    internal Fp8Input Quantize(CudaTensor x, Fp8Activations scheme, (CudaTensor Weight, float Eps)? norm = null)
    {
        int t = x.Rows, k = x.RowLength, padded = (t + 3) / 4 * 4;
        bool grouped = scheme.Scaling == Fp8ActivationScaling.PerTokenGroup;
        if (k % (grouped ? Fp8Activations.Group : 8) != 0 || x.Pointer % 16 != 0)
            throw new LongCtxException($"an FP8 projection's input {x} on the GPU needs rows of a multiple of {(grouped ? 128 : 8)} on 16-byte boundaries");
        var codes = CudaTensor.Allocate(_device.Pool, DType.U8, [padded, k]);
        var scales = _device.Allocate(DType.F32, grouped ? [k / Fp8Activations.Group, padded] : [padded], zeroed: padded > t);
        if (padded > t)
            CudaDriver.Check(CudaDriver.cuMemsetD8Async(codes.Pointer + (nint)((long)t * k), 0, (nuint)((long)(padded - t) * k), _device.ComputeStream), "cuMemsetD8Async");
        if (t > 0)
        {
            if (norm is { } n)
            {
                var fn = _device.Function(Fp8Source, "rms_norm_quant");
                uint shared = (uint)(k * 2);
                CudaDevice.AllowSharedMemory(fn, shared);
                _device.LaunchDependent(fn, ((uint)t, 1), 256, shared, x.Pointer, n.Weight.Pointer, codes.Pointer, scales.Pointer, padded, k, n.Eps,
                    grouped ? 1 : 0, grouped ? 0 : SchemeCode(scheme.Scaling), scheme.Parameter);
            }
            else if (grouped)
            {
                long items = (long)t * (k / Fp8Activations.Group);
                _device.LaunchDependent(_device.Function(Fp8Source, "quantize_groups"), ((uint)((items + QuantizeWarps - 1) / QuantizeWarps), 1), QuantizeWarps * 32, 0,
                    x.Pointer, k, codes.Pointer, scales.Pointer, padded, t, k);
            }
            else
                _device.LaunchDependent(_device.Function(Fp8Source, "quantize_rows"), ((uint)CeilDiv(t, QuantizeWarps), 1), QuantizeWarps * 32, 0,
                    x.Pointer, k, codes.Pointer, scales.Pointer, t, k, SchemeCode(scheme.Scaling), scheme.Parameter);
        }
        return new Fp8Input(codes, scales, t, scheme);
    }

    /// <summary>Whether rms_norm_quant may normalise and quantise x at once: the vectorised norm's conditions, and the row in shared memory.</summary>
    private bool Fp8NormFuses(CudaTensor x, CudaTensor normWeight, Fp8Activations scheme) =>
        _fp8FusedNorm && Vectorisable(x.RowLength, x.Pointer, normWeight.Pointer) && x.RowLength * 2 <= 200 * 1024
        && (scheme.Scaling != Fp8ActivationScaling.PerTokenGroup || x.RowLength % Fp8Activations.Group == 0);

    /// <summary>y (+)= the FP8 product of a quantised input and an FP8 weight (+ bias).</summary>
    internal void Fp8Gemm(Fp8Input a, CudaTensor w, CudaTensor y, CudaTensor? bias, bool accumulate)
    {
        var f = w.Fp8!;
        int t = a.Rows, k = w.RowLength, n = w.Rows;
        Check(a.Codes.RowLength == k && y.Rows == t && y.RowLength == n, $"Linear: x [{t}, {a.Codes.RowLength}] (fp8), weight {w}, y {y}");
        if (f.Blocks != (a.Scheme.Scaling == Fp8ActivationScaling.PerTokenGroup))
            throw new LongCtxException($"FP8 weight {w} with inputs quantised {a.Scheme}: 128 x 128 weight blocks go with inputs per group of 128, and only they");
        if (t == 0) return;
        if (t <= GemvFp8MaxRows)
        {
            var gemv = _device.Function(GemvFp8Source, "gemv_fp8", $"ROWS={t}", $"GROUPS={(f.Blocks ? 1 : 0)}");
            _device.Timed("gemm", () => _device.LaunchDependent(gemv, ((uint)CeilDiv(n, GemvFp8WarpsPerBlock), 1), GemvFp8WarpsPerBlock * 32, 0,
                a.Codes.Pointer, a.Scales.Pointer, a.Padded, w.Pointer, f.Scales.Pointer, f.Stride, bias?.Pointer ?? 0, y.Pointer, n, k, accumulate ? 1 : 0));
            return;
        }
        var scaling = f.Blocks ? Fp8GemmScaling.Blocks : Fp8GemmScaling.Rows;
        // cuBLASLt adds a 16-byte aligned bias in its epilogue and the old y with beta = 1 where it has algorithms that do
        // with these scale modes; where it has not (found once), the product alone, and kernels add them.
        if (!_fp8EpilogueRefused)
        {
            try
            {
                Fp8Product(a, w, y, bias, accumulate, scaling, epilogue: true);
                return;
            }
            catch (LongCtxException) when (bias is not null || accumulate)
            {
                _fp8EpilogueRefused = true;
            }
        }
        Fp8Product(a, w, y, bias, accumulate, scaling, epilogue: false);
    }

    // Set when cuBLASLt declines an FP8 GEMM with a bias epilogue or beta = 1: later ones add them with kernels.
    private bool _fp8EpilogueRefused;

    /// <summary>
    /// cuBLASLt's FP8 product into y (rows not a multiple of 4 through a buffer of the padded rows): with the epilogue, the
    /// bias (16-byte aligned) and the old y (accumulate) added in the GEMM's fp32; without, added after by kernels.
    /// </summary>
    private void Fp8Product(Fp8Input a, CudaTensor w, CudaTensor y, CudaTensor? bias, bool accumulate, Fp8GemmScaling scaling, bool epilogue)
    {
        var f = w.Fp8!;
        int t = a.Rows, k = w.RowLength, n = w.Rows;
        nint fused = epilogue && bias is not null && bias.Pointer % 16 == 0 ? bias.Pointer : 0;
        bool gemmAccumulates = epilogue && accumulate;
        if (a.Padded == t && (gemmAccumulates || !accumulate))
            _device.Timed("gemm", () => _device.Gemms.RunFp8(a.Codes.Pointer, a.Scales.Pointer, w.Pointer, f.Scales.Pointer, y.Pointer, fused, t, k, n, gemmAccumulates, scaling));
        else
        {
            using var buffer = CudaTensor.Allocate(_device.Pool, DType.BF16, [a.Padded, n]);
            var head = (CudaTensor)buffer.SliceRows(0, t);
            if (gemmAccumulates) _device.Copy(y, head);
            _device.Timed("gemm", () => _device.Gemms.RunFp8(a.Codes.Pointer, a.Scales.Pointer, w.Pointer, f.Scales.Pointer, buffer.Pointer, fused, a.Padded, k, n, gemmAccumulates, scaling));
            if (accumulate && !gemmAccumulates) Add(y, head);
            else _device.Copy(head, y);
        }
        if (bias is not null && fused == 0) _device.Launch(Fn("add_bias"), Grid(y.Length), 256, 0, y.Pointer, bias.Pointer, y.Length, y.RowLength);
    }

    /// <summary>One FP8 projection of x (bf16) into y.</summary>
    private void LinearFp8(CudaTensor x, CudaTensor w, CudaTensor? bias, CudaTensor y, bool accumulate)
    {
        using var a = Quantize(x, w.Fp8!.Scheme.Activations);
        Fp8Gemm(a, w, y, bias, accumulate);
    }

    /// <summary>
    /// Projections of one input (q, k, v; gate, up), some FP8: the FP8 ones share one quantisation of it (per scheme),
    /// made with the RMSNorm where <paramref name="norm"/> is given and it fuses; h holds the normed x only where a bf16
    /// projection or an unfused quantisation needed it.
    /// </summary>
    private void ProjectionsWithFp8(CudaTensor x, (CudaTensor Weight, float Eps)? norm, Tensor? h, ReadOnlySpan<(Tensor Weight, Tensor? Bias, Tensor Y)> projections)
    {
        bool allFp8 = true, oneScheme = true;
        var firstScheme = C(projections[0].Weight).Fp8?.Scheme.Activations;
        foreach (var p in projections)
        {
            allFp8 &= IsFp8(p.Weight);
            oneScheme &= C(p.Weight).Fp8?.Scheme.Activations == firstScheme;
        }
        bool fuse = norm is { } nw && allFp8 && firstScheme is { } fs && Fp8NormFuses(x, nw.Weight, fs);
        if (allFp8 && oneScheme && x.Rows <= GemvFp8MaxRows && projections.Length <= Fp8ProjectionsArgument.Max)
        {
            using var a = fuse ? Quantize(x, firstScheme!.Value, norm) : Quantize(NormedOrSelf(x, norm, h), firstScheme!.Value);
            GemvEach(a, projections);
            return;
        }
        var input = x;
        if (norm is { } n && !fuse)
        {
            RmsNorm(x, n.Weight, n.Eps, h!);
            input = C(h!);
        }
        Fp8Input? shared = null;
        try
        {
            foreach (var (weight, bias, y) in projections)
            {
                var w = C(weight);
                if (w.Fp8 is null)
                {
                    Linear(input, weight, bias, y);
                    continue;
                }
                var scheme = w.Fp8.Scheme.Activations;
                if (shared is null || shared.Scheme != scheme)
                {
                    shared?.Dispose();
                    shared = fuse ? Quantize(x, scheme, norm) : Quantize(input, scheme);
                }
                Fp8Gemm(shared, w, C(y), bias is null ? null : C(bias), accumulate: false);
            }
        }
        finally
        {
            shared?.Dispose();
        }
    }

    private CudaTensor NormedOrSelf(CudaTensor x, (CudaTensor Weight, float Eps)? norm, Tensor? h)
    {
        if (norm is not { } n) return x;
        RmsNorm(x, n.Weight, n.Eps, h!);
        return C(h!);
    }

    /// <summary>Up to three FP8 projections of one quantised input of up to 16 rows in one launch (gemv_fp8_each).</summary>
    private void GemvEach(Fp8Input a, ReadOnlySpan<(Tensor Weight, Tensor? Bias, Tensor Y)> projections)
    {
        var list = new Fp8ProjectionsArgument();
        int outputs = 0, k = a.Codes.RowLength, stride = C(projections[0].Weight).Fp8!.Stride;
        bool blocks = C(projections[0].Weight).Fp8!.Blocks;
        foreach (var (weight, bias, y) in projections)
        {
            var (w, ys) = (C(weight), C(y));
            var f = w.Fp8!;
            Check(w.RowLength == k && ys.Rows == a.Rows && ys.RowLength == w.Rows && f.Stride == stride && f.Blocks == blocks, $"Linear: x [{a.Rows}, {k}] (fp8), weight {w}, y {ys}");
            list.Add(w.Pointer, f.Scales.Pointer, bias is null ? 0 : C(bias).Pointer, ys.Pointer, w.Rows);
            outputs += w.Rows;
        }
        if (a.Rows == 0) return;
        var fn = _device.Function(GemvFp8Source, "gemv_fp8_each", $"ROWS={a.Rows}", $"GROUPS={(blocks ? 1 : 0)}");
        nint byValue = (nint)(&list); // the driver copies the argument at the launch
        uint grid = (uint)CeilDiv(outputs, GemvFp8WarpsPerBlock);
        _device.Timed("gemm", () => _device.LaunchDependentWithStruct(fn, (grid, 1, 1), GemvFp8WarpsPerBlock * 32, 0, byValue, a.Codes.Pointer, a.Scales.Pointer, a.Padded, stride, k));
    }

    /// <summary>
    /// The MLP's first half with FP8 gate and up of one scheme: for up to 16 rows one gemv_fp8_swiglu launch (the bits of
    /// the two projections and SwiGLU apart), else the projections and SwiGLU.
    /// </summary>
    private void SwiGluFp8(CudaTensor x, (CudaTensor Weight, float Eps)? norm, Tensor? h, Tensor gateWeight, Tensor upWeight, Tensor y, Tensor up)
    {
        var (g, u) = (C(gateWeight), C(upWeight));
        if (x.Rows <= GemvFp8MaxRows && g.Fp8 is { } gf && u.Fp8 is { } uf && gf.Scheme.Activations == uf.Scheme.Activations && gf.Stride == uf.Stride && gf.Blocks == uf.Blocks)
        {
            int k = x.RowLength, n = g.Rows;
            Check(u.Rows == n && g.RowLength == k && u.RowLength == k && y.Rows == x.Rows && y.RowLength == n, $"SwiGluLinear: x {x}, gate {g}, up {u}, y {y}");
            var scheme = gf.Scheme.Activations;
            using var a = norm is { } nw && Fp8NormFuses(x, nw.Weight, scheme) ? Quantize(x, scheme, norm) : Quantize(NormedOrSelf(x, norm, h), scheme);
            if (a.Rows == 0) return;
            var fn = _device.Function(GemvFp8Source, "gemv_fp8_swiglu", $"ROWS={a.Rows}", $"GROUPS={(gf.Blocks ? 1 : 0)}");
            _device.Timed("gemm", () => _device.LaunchDependent(fn, ((uint)CeilDiv(n, GemvFp8WarpsPerBlock), 1), GemvFp8WarpsPerBlock * 32, 0,
                a.Codes.Pointer, a.Scales.Pointer, a.Padded, g.Pointer, gf.Scales.Pointer, u.Pointer, uf.Scales.Pointer, gf.Stride, C(y).Pointer, n, k));
            return;
        }
        ProjectionsWithFp8(x, norm, h, [(gateWeight, null, y), (upWeight, null, up)]);
        SwiGlu(y, up, y);
    }

    /// <summary>The FP8 KV cache's stores (copies into F8E4M3 tensors): e4m3(f32(x / scale)) by quantize_store_list, 32 at a launch.</summary>
    private void QuantizeStores(ReadOnlySpan<(CudaTensor Source, CudaTensor Destination)> stores)
    {
        var list = new StoreListArgument();
        foreach (var (s, d) in stores)
        {
            Check(s.DType == DType.BF16 && d.DType == DType.F8E4M3 && s.Length == d.Length, $"storing {s} into the FP8 cache {d}");
            if (s.Length == 0) continue;
            if (s.Length % 8 != 0 || s.Pointer % 16 != 0 || d.Pointer % 8 != 0)
                throw new LongCtxException($"the FP8 KV cache on the GPU needs rows of a multiple of 8 values (KV heads x head dim) on aligned addresses: {s} into {d}");
            if (list.Count == StoreListArgument.MaxStores)
            {
                LaunchStores(list);
                list = new StoreListArgument();
            }
            list.Add(s.Pointer, d.Pointer, d.Scale, (int)(s.Length / 8));
        }
        if (list.Count > 0) LaunchStores(list);
    }

    private void LaunchStores(StoreListArgument list)
    {
        nint byValue = (nint)(&list); // the driver copies the argument at the launch
        var fn = _device.Function(Fp8Source, "quantize_store_list");
        uint blocks = (uint)CeilDiv(list.Chunks, 256);
        _device.Timed(CudaDevice.Copies, () => _device.LaunchDependentWithStruct(fn, (blocks, 1, 1), 256, 0, byValue));
    }

    /// <summary>An FP8 cache block's codes as bf16 values (exact), for the attention paths that read bf16.</summary>
    private CudaTensor CodesAsBf16(CudaTensor codes)
    {
        var values = CudaTensor.Allocate(_device.Pool, DType.BF16, codes.Shape);
        if (codes.Length % 8 != 0 || codes.Pointer % 8 != 0)
            throw new LongCtxException($"the FP8 KV cache on the GPU needs rows of a multiple of 8 values on aligned addresses: {codes}");
        if (codes.Length > 0)
            _device.Launch(_device.Function(Fp8Source, "codes_to_bf16"), Grid(codes.Length / 8), 256, 0, codes.Pointer, values.Pointer, codes.Length / 8);
        return values;
    }

    /// <summary>A tensor's bytes on the host, whatever its element type (tests read codes with it).</summary>
    internal byte[] DownloadBytes(Tensor t)
    {
        var bytes = new byte[t.Bytes];
        CopyOut(C(t), bytes);
        return bytes;
    }

    /// <summary>x = bf16(x · s): the FP8 cache's value scale on an attention output.</summary>
    private void ScaleInPlace(CudaTensor x, float s)
    {
        if (s == 1f || x.Length == 0) return;
        Check(x.DType == DType.BF16 && x.Length % 8 == 0 && x.Pointer % 16 == 0, $"scaling {x}");
        _device.Launch(_device.Function(Fp8Source, "scale_bf16"), Grid(x.Length / 8), 256, 0, x.Pointer, x.Length / 8, s);
    }
}
