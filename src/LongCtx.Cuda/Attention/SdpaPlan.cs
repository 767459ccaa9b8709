using static LongCtx.Cuda.Native.Cudnn;

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
            throw new SettingException(Setting.Attention, $"{Describe(status, $"cudnnBackendExecute (SDPA {SdpaForwardGraph.Describe(shape)})")}; the own attention kernel runs without cuDNN");
    }

    public void Dispose()
    {
        foreach (var d in descriptors) d.Dispose();
        descriptors.Clear();
    }
}
