using System.Runtime.InteropServices;
using LongCtx.Sampling;
using LongCtx.Tensors;

namespace LongCtx.Backends;

/// <summary>
/// The operations a backend may do better than its primitives, for any backend: the backend's own where it implements
/// <see cref="IFusedOps"/>, <see cref="ISamplingOps"/> or <see cref="ICompressionOps"/>, else — here and only here —
/// their composition from the primitives or their computation on the host.
/// </summary>
public static class BackendOps
{
    public static void CopyEach(this IBackend b, params ReadOnlySpan<(Tensor Source, Tensor Destination)> copies)
    {
        if (b is IFusedOps f)
        {
            f.CopyEach(copies);
            return;
        }
        foreach (var (source, destination) in copies) b.Copy(source, destination);
    }

    public static void LinearEach(this IBackend b, Tensor x, params ReadOnlySpan<(Tensor Weight, Tensor? Bias, Tensor Y)> projections)
    {
        if (b is IFusedOps f)
        {
            f.LinearEach(x, projections);
            return;
        }
        foreach (var (weight, bias, y) in projections) b.Linear(x, weight, bias, y);
    }

    /// <summary><see cref="IFusedOps.NormedLinearEach"/>; h holds the normed x only where the backend did not fuse the norm.</summary>
    public static void NormedLinearEach(this IBackend b, Tensor x, Tensor normWeight, float eps, Tensor h, params ReadOnlySpan<(Tensor Weight, Tensor? Bias, Tensor Y)> projections)
    {
        if (b is IFusedOps f)
        {
            f.NormedLinearEach(x, normWeight, eps, h, projections);
            return;
        }
        b.RmsNorm(x, normWeight, eps, h);
        b.LinearEach(h, projections);
    }

    public static void NormedRotatedQkv(this IBackend b, Tensor x, Tensor normWeight, float eps, Tensor h, (Tensor Weight, Tensor? Bias, Tensor Y) q,
        (Tensor Weight, Tensor? Bias, Tensor Y) k, (Tensor Weight, Tensor? Bias, Tensor Y) v, TokenLayout layout, RopeTable rope)
    {
        if (b is IFusedOps f)
        {
            f.NormedRotatedQkv(x, normWeight, eps, h, q, k, v, layout, rope);
            return;
        }
        b.NormedLinearEach(x, normWeight, eps, h, q, k, v);
        int d = rope.HeadDim;
        b.Rope(q.Y.View(q.Y.Rows, q.Y.RowLength / d, d), k.Y.View(k.Y.Rows, k.Y.RowLength / d, d), layout, rope);
    }

    public static void NormedSwiGluLinear(this IBackend b, Tensor x, Tensor normWeight, float eps, Tensor h, Tensor gateWeight, Tensor upWeight, Tensor y, Tensor up)
    {
        if (b is IFusedOps f)
        {
            f.NormedSwiGluLinear(x, normWeight, eps, h, gateWeight, upWeight, y, up);
            return;
        }
        b.RmsNorm(x, normWeight, eps, h);
        b.SwiGluLinear(h, gateWeight, upWeight, y, up);
    }

    public static void SwiGluLinear(this IBackend b, Tensor x, Tensor gateWeight, Tensor upWeight, Tensor y, Tensor up)
    {
        if (b is IFusedOps f)
        {
            f.SwiGluLinear(x, gateWeight, upWeight, y, up);
            return;
        }
        b.Linear(x, gateWeight, null, y);
        b.Linear(x, upWeight, null, up);
        b.SwiGlu(y, up, y);
    }

    public static void Rope(this IBackend b, Tensor q, Tensor k, TokenLayout layout, RopeTable rope)
    {
        if (b is IFusedOps f)
        {
            f.Rope(q, k, layout, rope);
            return;
        }
        b.Rope(q, layout, rope);
        b.Rope(k, layout, rope);
    }

    public static void AttentionEach(this IBackend b, Tensor q, Tensor output, Tensor lse, AttentionRule rule, params ReadOnlySpan<AttentionPart> parts)
    {
        if (b is IFusedOps f)
        {
            f.AttentionEach(q, output, lse, rule, parts);
            return;
        }
        foreach (var p in parts)
        {
            int n = p.Queries.Count;
            b.Attention(q.SliceRows(p.QueryRow, n), p.Queries, p.K, p.V, p.Keys, rule, output.SliceRows(p.QueryRow, n), lse.SliceRows(p.QueryRow, n));
        }
    }

    public static void DrawTokens(this IBackend b, Tensor x, ReadOnlySpan<TokenDraw> draws, Span<int> result)
    {
        if (b is ISamplingOps s)
        {
            s.DrawTokens(x, draws, result);
            return;
        }
        var host = InHostMemory(b, x);
        int n = x.RowLength;
        for (int i = 0; i < x.Rows; i++)
            result[i] = TokenPicker.Draw(host.Slice(i * n, n), draws[i]);
    }

    public static PositionLogprobs[] Logprobs(this IBackend b, Tensor x, ReadOnlySpan<int> tokens, int top)
    {
        if (b is ISamplingOps s) return s.Logprobs(x, tokens, top);
        var host = HostFloats(b, x);
        int n = x.RowLength;
        var ids = tokens.ToArray();
        var result = new PositionLogprobs[x.Rows];
        System.Threading.Tasks.Parallel.For(0, x.Rows, i => result[i] = Sampling.Logprobs.Of(host.AsSpan(i * n, n), ids[i], top));
        return result;
    }

    public static void TopRowsPerHead(this IBackend b, Tensor scores, int count, Tensor rows)
    {
        if (b is ICompressionOps c)
        {
            c.TopRowsPerHead(scores, count, rows);
            return;
        }
        int n = scores.Rows, heads = scores.Shape[1];
        var host = new float[n * heads];
        b.Download<float>(scores, host);
        var top = new int[count * heads];
        System.Threading.Tasks.Parallel.For(0, heads, h =>
        {
            var mine = HostSelection.TopRows(host, n, heads, h, count);
            for (int i = 0; i < count; i++) top[i * heads + h] = mine[i];
        });
        using var uploaded = b.Upload<int>(top, count, heads);
        b.Copy(uploaded, rows);
    }

    public static void KeyAttentionMass(this IBackend b, Tensor q, TokenLayout queries, Tensor k, TokenLayout keys, float scale, Tensor mass)
    {
        if (b is ICompressionOps c)
        {
            c.KeyAttentionMass(q, queries, k, keys, scale, mass);
            return;
        }
        int heads = q.Shape[1], dim = q.Shape[2], kvHeads = k.Shape[1];
        if (queries.Count != q.Rows || keys.Count != k.Rows || mass.Length != (long)k.Rows * kvHeads || k.Shape[2] != dim || mass.DType != DType.F32)
            throw new ArgumentException($"KeyAttentionMass: q {q}, k {k}, mass {mass}");
        // Uploaded floats are the backend's activation type: F32 on the backends without ICompressionOps.
        var result = new float[mass.Length];
        HostAttentionMass.Compute(HostFloats(b, q), queries, heads, HostFloats(b, k), keys, kvHeads, dim, scale, result);
        using var uploaded = b.Upload<float>(result, mass.Shape);
        b.Copy(uploaded, mass);
    }

    /// <summary>
    /// A tensor's floats where they are when they lie in host memory already (the CPU's logits: a decode step would
    /// otherwise copy a vocabulary's row every step), else downloaded.
    /// </summary>
    private static ReadOnlySpan<float> InHostMemory(IBackend b, Tensor t) =>
        t is IHostBytes host && t.DType == DType.F32 ? MemoryMarshal.Cast<byte, float>(host.RawBytes) : HostFloats(b, t);

    private static float[] HostFloats(IBackend b, Tensor t)
    {
        var host = new float[t.Length];
        b.Download<float>(t, host);
        return host;
    }
}
