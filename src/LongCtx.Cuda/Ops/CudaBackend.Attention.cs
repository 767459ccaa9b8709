using LongCtx.Backends;
using LongCtx.Cuda.Attention;
using LongCtx.Cuda.Native;
using LongCtx.Tensors;

namespace LongCtx.Cuda.Ops;

/// <summary>Attention calls, checked here and run by the paths of Attention/ (<see cref="AttentionPaths"/>).</summary>
public sealed unsafe partial class CudaBackend
{
    public void Attention(Tensor q, TokenLayout queries, Tensor k, Tensor v, TokenLayout keys, AttentionRule rule, Tensor output, Tensor lse)
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
        var vs = C(v);
        if (ks.DType != DType.F8E4M3)
        {
            _attention.Run(new AttentionCall(qs, queries, ks, vs, keys, rule, C(output), C(lse)));
            return;
        }
        // The FP8 KV cache: the decode kernel and cuDNN's FP8 SDPA (--attention-dtype fp8) read its codes; the other paths
        // read them as bf16 values (exact), the key scale folded into the softmax scale (before any soft cap, as the rule applies
        // it) and the value scale applied to the output.
        var call = new AttentionCall(qs, queries, ks, vs, keys, rule, C(output), C(lse));
        if (_attention.Decode.TryRun(call, _attention.Settings) || (_attention.Settings.Fp8 && _attention.Cudnn.TryRun(call, _attention.Settings))) return;
        using var kb = CodesAsBf16(ks);
        using var vb = CodesAsBf16(vs);
        _attention.Run(call with { K = kb, V = vb, Rule = rule with { Scale = rule.Scale * ks.Scale } });
        ScaleInPlace(C(output), vs.Scale);
    }

    /// <summary>
    /// Runs of consecutive parts that the decode kernels take in one launch each (a batch of 8 sequences decoding one
    /// token each: one launch a layer, not 8); any other part through <see cref="Attention"/>.
    /// </summary>
    public void AttentionEach(Tensor q, Tensor output, Tensor lse, AttentionRule rule, params ReadOnlySpan<AttentionPart> parts)
    {
        var (qs, os, ls) = (C(q), C(output), C(lse));
        for (int i = 0; i < parts.Length;)
        {
            int taken = _attention.RunDecodeParts(qs, os, ls, rule, parts, i);
            if (taken > 0)
            {
                i += taken;
                continue;
            }
            var p = parts[i++];
            int n = p.Queries.Count;
            Attention(q.SliceRows(p.QueryRow, n), p.Queries, p.K, p.V, p.Keys, rule, output.SliceRows(p.QueryRow, n), lse.SliceRows(p.QueryRow, n));
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
}
