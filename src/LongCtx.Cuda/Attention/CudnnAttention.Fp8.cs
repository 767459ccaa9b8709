using LongCtx.Cuda.Native;
using LongCtx.Cuda.Runtime;
using LongCtx.Tensors;

namespace LongCtx.Cuda.Attention;

/// <summary>
/// FP8 attention (<c>--attention-dtype fp8</c>) through cuDNN's FP8 SDPA (<see cref="SdpaFp8Graph"/>): Q quantised per
/// tensor (amax, scale, codes: Kernels/fp8_quant.cu), K and V the FP8 cache's codes with its scales, or quantised per
/// tensor like Q; the output's codes brought back to bf16. Hopper's FP8 engines take unmasked blocks and causal blocks
/// with as many keys as queries, so a causal slice with more keys is run as its unmasked part and its square causal
/// part, merged by log-sum-exp.
/// </summary>
internal sealed partial class CudnnAttention
{
    private const string Fp8Source = "fp8_quant.cu";

    /// <summary>Queues the FP8 attention of every block; false, with nothing queued, when cuDNN has no FP8 plan for one of them.</summary>
    public unsafe bool TryRunFp8(AttentionBlocks blocks, CudnnCallPlan callPlan, CudaTensor q, CudaTensor k, CudaTensor v, CudaTensor output, CudaTensor lse, float scale)
    {
        int heads = q.Shape[1], kvHeads = k.Shape[1], d = q.Shape[2];
        var calls = new List<(DenseBlock Block, bool Merge)>();
        foreach (var b in blocks.Blocks.SelectMany(b => Slices(b, callPlan.RowsFor(b.QueryCount))))
        {
            if (!b.Causal || b.KeyCount == b.QueryCount)
            {
                calls.Add((b, false));
                continue;
            }
            int before = b.KeyCount - b.QueryCount;
            calls.Add((new DenseBlock(b.QueryStart, b.QueryCount, b.KeyStart, before, Causal: false), false));
            calls.Add((new DenseBlock(b.QueryStart, b.QueryCount, b.KeyStart + before, b.QueryCount, Causal: true), true));
        }
        var plans = new SdpaPlan[calls.Count];
        for (int i = 0; i < plans.Length; i++)
        {
            var b = calls[i].Block;
            if (Plan(new SdpaShape(heads, kvHeads, d, b.QueryCount, b.KeyCount, b.Causal, callPlan.EngineConfig, Fp8: true)) is not { } plan) return false;
            plans[i] = plan;
        }

        var pool = _device.Pool;
        long scalarBytes = SdpaFp8Graph.Scalars.Bytes;
        nint scalars = pool.Allocate(scalarBytes);
        bool fp8Cache = k.DType == DType.F8E4M3;
        // The fixed scalars (and an FP8 cache's scales) from the host; the others the kernels below compute.
        var host = new float[scalarBytes / sizeof(float)];
        void Put(int i, float value) => host[i * SdpaFp8Graph.Scalars.Stride / sizeof(float)] = value;
        Put(SdpaFp8Graph.Scalars.DescaleS, 1f / 448f);
        Put(SdpaFp8Graph.Scalars.ScaleS, 448f);
        if (fp8Cache)
        {
            Put(SdpaFp8Graph.Scalars.DescaleK, k.Scale);
            Put(SdpaFp8Graph.Scalars.DescaleV, v.Scale);
            Put(SdpaFp8Graph.Scalars.ScaleO, 1f / v.Scale);
        }
        fixed (float* h = host) CudaDriver.Check(CudaDriver.cuMemcpyHtoDAsync(scalars, h, (nuint)scalarBytes, _device.ComputeStream), "uploading the FP8 attention's scales");
        var owned = new List<(nint Pointer, long Bytes)> { (scalars, scalarBytes) };
        try
        {
            nint Slot(int i) => SdpaFp8Graph.Scalars.At(scalars, i);
            nint q8 = QuantizePerTensor(q, Slot(SdpaFp8Graph.Scalars.DescaleQ), 0, owned);
            nint k8 = fp8Cache ? k.Pointer : QuantizePerTensor(k, Slot(SdpaFp8Graph.Scalars.DescaleK), 0, owned);
            nint v8 = fp8Cache ? v.Pointer : QuantizePerTensor(v, Slot(SdpaFp8Graph.Scalars.DescaleV), Slot(SdpaFp8Graph.Scalars.ScaleO), owned);

            long qRow8 = (long)heads * d, kvRow8 = (long)kvHeads * d, qRow = qRow8 * 2, lseRow = heads * 4L;
            foreach (var (start, count) in blocks.EmptyRuns)
            {
                CudaDriver.Check(CudaDriver.cuMemsetD8Async(output.Pointer + (nint)(start * qRow), 0, (nuint)(count * qRow), _device.ComputeStream), "cuMemsetD8Async");
                CudaDriver.Check(CudaDriver.cuMemsetD32Async(lse.Pointer + (nint)(start * lseRow), NegativeInfinityBits, (nuint)((long)count * heads), _device.ComputeStream),
                    "cuMemsetD32Async");
            }
            var transpose = _device.Function(Elementwise, "lse_from_head_major");
            var toBf16 = _device.Function(Fp8Source, "codes_to_bf16_scaled");
            for (int i = 0; i < plans.Length; i++)
            {
                var (b, isMerged) = calls[i];
                long n = (long)b.QueryCount * heads, outBytes = n * d;
                nint o8 = Take(outBytes, owned), stats = Take(n * 4, owned);
                nint workspace = plans[i].WorkspaceBytes > 0 ? Take(plans[i].WorkspaceBytes, owned) : 0;
                plans[i].ExecuteFp8(_handle, q8 + (nint)(b.QueryStart * qRow8), k8 + (nint)(b.KeyStart * kvRow8), v8 + (nint)(b.KeyStart * kvRow8), o8, stats, scale, scalars, workspace);
                // A merged part lands in buffers of its own, then into the rows the unmasked part wrote.
                nint rows = isMerged ? Take(outBytes * 2, owned) : output.Pointer + (nint)(b.QueryStart * qRow);
                nint rowLse = isMerged ? Take(n * 4, owned) : lse.Pointer + (nint)(b.QueryStart * lseRow);
                _device.Launch(toBf16, Launches.Grid(outBytes / 8), 256, 0, o8, rows, outBytes / 8, Slot(SdpaFp8Graph.Scalars.DescaleV));
                _device.Launch(transpose, ((uint)((n + 255) / 256), 1), 256, 0, stats, rowLse, b.QueryCount, heads);
                if (isMerged)
                    LseMerge.Merge(_device, output.Pointer + (nint)(b.QueryStart * qRow), lse.Pointer + (nint)(b.QueryStart * lseRow), rows, rowLse, n, d);
            }
        }
        finally
        {
            // Stream-ordered pool: a block freed here is only reused by work queued after this point.
            foreach (var (pointer, bytes) in owned) pool.Free(pointer, bytes);
        }
        return true;
    }

    private nint Take(long bytes, List<(nint, long)> owned)
    {
        nint p = _device.Pool.Allocate(bytes);
        owned.Add((p, bytes));
        return p;
    }

    /// <summary>x (bf16, a multiple of 8 elements) as e4m3 codes with one dynamic scale, written to <paramref name="scale"/> (its inverse to <paramref name="inverse"/> unless 0).</summary>
    private nint QuantizePerTensor(CudaTensor x, nint scale, nint inverse, List<(nint, long)> owned)
    {
        if (x.Length % 8 != 0 || x.Pointer % 16 != 0) throw new LongCtxException($"FP8 attention needs {x} in whole 16-byte groups");
        long n8 = x.Length / 8;
        nint amax = Take(4, owned), codes = Take(x.Length, owned);
        CudaDriver.Check(CudaDriver.cuMemsetD32Async(amax, 0, 1, _device.ComputeStream), "cuMemsetD32Async");
        _device.Launch(_device.Function(Fp8Source, "amax_bf16"), ((uint)Math.Min((n8 + 255) / 256, 4096), 1), 256, 0, x.Pointer, n8, amax);
        _device.Launch(_device.Function(Fp8Source, "tensor_scale"), (1u, 1u), 1, 0, amax, scale, inverse);
        _device.Launch(_device.Function(Fp8Source, "quantize_tensor"), Launches.Grid(n8), 256, 0, x.Pointer, codes, n8, scale);
        return codes;
    }
}
