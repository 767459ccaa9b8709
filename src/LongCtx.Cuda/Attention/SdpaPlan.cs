using static LongCtx.Cuda.Native.Cudnn;
using LongCtx.Cuda.Native;

namespace LongCtx.Cuda.Attention;

/// <summary>
/// A finalized SDPA forward plan for one <see cref="SdpaShape"/>, with the descriptors it was built from
/// (kept alive as long as the plan). Executing it binds device pointers and the by-value scalars.
/// </summary>
internal sealed unsafe class SdpaPlan(SdpaShape shape, CudnnDescriptor plan, long workspaceBytes, List<CudnnDescriptor> descriptors, float maskValue)
    : IDisposable
{
    public SdpaShape Shape => shape;
    public long WorkspaceBytes => workspaceBytes;

    /// <summary>Queues the attention on the handle's stream; stats are [heads, queryRows] fp32.</summary>
    public void Execute(nint handle, nint q, nint k, nint v, nint o, nint stats, float scale, nint workspace)
    {
        float mask = maskValue;
        int keyRows = shape.KeyRows, queryRows = shape.QueryRows;
        bool shifted = shape.Causal && keyRows != queryRows;
        int count = !shape.Causal ? 6 : shifted ? 9 : 7;
        var ids = stackalloc long[9] { SdpaForwardGraph.QId, SdpaForwardGraph.KId, SdpaForwardGraph.VId, SdpaForwardGraph.OId,
            SdpaForwardGraph.StatsId, SdpaForwardGraph.ScaleId, SdpaForwardGraph.MaskValueId, SdpaForwardGraph.KeyRowsId, SdpaForwardGraph.QueryRowsId };
        // By-value tensors are passed as host pointers to their values.
        var pointers = stackalloc nint[9] { q, k, v, o, stats, (nint)(&scale), (nint)(&mask), (nint)(&keyRows), (nint)(&queryRows) };
        using var pack = new CudnnDescriptor(DescriptorType.VariantPack);
        pack.Set(AttributeName.VariantPackUniqueIds, AttributeType.Int64, count, ids)
            .Set(AttributeName.VariantPackDataPointers, AttributeType.VoidPointer, count, pointers)
            .Set(AttributeName.VariantPackWorkspace, AttributeType.VoidPointer, 1, &workspace)
            .Complete();
        int status = cudnnBackendExecute(handle, plan.Handle, pack.Handle);
        if (status != StatusSuccess)
            throw new LongCtxException($"{Describe(status, $"cudnnBackendExecute (SDPA {SdpaForwardGraph.Describe(shape)})")}; rerun with --attention kernel to use the own attention kernel");
    }

    /// <summary>
    /// The FP8 plan's execution: q, k, v, o e4m3 codes, stats as <see cref="Execute"/>, and <paramref name="scalars"/> the
    /// device floats of <see cref="SdpaFp8Graph.Scalars"/> (descales and scales read, the two amaxes written).
    /// </summary>
    public void ExecuteFp8(nint handle, nint q, nint k, nint v, nint o, nint stats, float scale, nint scalars, nint workspace)
    {
        float mask = maskValue;
        int count = shape.Causal ? 15 : 14;
        var ids = stackalloc long[15] { SdpaForwardGraph.QId, SdpaForwardGraph.KId, SdpaForwardGraph.VId, SdpaForwardGraph.OId, SdpaForwardGraph.StatsId,
            SdpaForwardGraph.ScaleId, SdpaFp8Graph.DescaleQId, SdpaFp8Graph.DescaleKId, SdpaFp8Graph.DescaleVId, SdpaFp8Graph.DescaleSId,
            SdpaFp8Graph.ScaleSId, SdpaFp8Graph.ScaleOId, SdpaFp8Graph.AmaxSId, SdpaFp8Graph.AmaxOId, SdpaForwardGraph.MaskValueId };
        var pointers = stackalloc nint[15] { q, k, v, o, stats, (nint)(&scale), scalars, scalars + 4, scalars + 8, scalars + 12, scalars + 16, scalars + 20,
            scalars + 24, scalars + 28, (nint)(&mask) };
        using var pack = new CudnnDescriptor(DescriptorType.VariantPack);
        pack.Set(AttributeName.VariantPackUniqueIds, AttributeType.Int64, count, ids)
            .Set(AttributeName.VariantPackDataPointers, AttributeType.VoidPointer, count, pointers)
            .Set(AttributeName.VariantPackWorkspace, AttributeType.VoidPointer, 1, &workspace)
            .Complete();
        int status = cudnnBackendExecute(handle, plan.Handle, pack.Handle);
        if (status != StatusSuccess)
            throw new LongCtxException($"{Describe(status, $"cudnnBackendExecute (SDPA {SdpaForwardGraph.Describe(shape)})")}; rerun without --attention-dtype fp8");
    }

    public void Dispose()
    {
        foreach (var d in descriptors) d.Dispose();
        descriptors.Clear();
    }
}
