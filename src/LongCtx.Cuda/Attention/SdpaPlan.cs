using static LongCtx.Cuda.Attention.SdpaFp8Graph.Scalars;
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

    /// <summary>
    /// Queues the attention on the handle's stream; stats are [heads, queryRows] fp32. <paramref name="leftBound"/> (windowed
    /// shapes) and <paramref name="softCap"/> (soft-capped ones) are the by-value scalars of those graph parts.
    /// </summary>
    public void Execute(nint handle, nint q, nint k, nint v, nint o, nint stats, float scale, nint workspace, float leftBound = 0f, float softCap = 0f)
    {
        float mask = maskValue;
        int keyRows = shape.KeyRows, queryRows = shape.QueryRows;
        var ids = new List<long>(12);
        var pointers = new List<nint>(12);
        void Add(long id, nint pointer)
        {
            ids.Add(id);
            pointers.Add(pointer);
        }
        Add(SdpaForwardGraph.QId, q);
        Add(SdpaForwardGraph.KId, k);
        Add(SdpaForwardGraph.VId, v);
        Add(SdpaForwardGraph.OId, o);
        Add(SdpaForwardGraph.StatsId, stats);
        // By-value tensors are passed as host pointers to their values.
        Add(SdpaForwardGraph.ScaleId, (nint)(&scale));
        if (shape.Causal)
        {
            Add(SdpaForwardGraph.MaskValueId, (nint)(&mask));
            if (keyRows != queryRows)
            {
                Add(SdpaForwardGraph.KeyRowsId, (nint)(&keyRows));
                Add(SdpaForwardGraph.QueryRowsId, (nint)(&queryRows));
            }
        }
        if (shape.Windowed)
        {
            Add(SdpaForwardGraph.LeftBoundId, (nint)(&leftBound));
            Add(SdpaForwardGraph.WindowMaskValueId, (nint)(&mask));
        }
        if (shape.SoftCapped) Add(SdpaForwardGraph.SoftCapId, (nint)(&softCap));
        var idArray = ids.ToArray();
        var pointerArray = pointers.ToArray();
        using var pack = new CudnnDescriptor(DescriptorType.VariantPack);
        fixed (long* idp = idArray)
        fixed (nint* pp = pointerArray)
            pack.Set(AttributeName.VariantPackUniqueIds, AttributeType.Int64, idArray.Length, idp)
                .Set(AttributeName.VariantPackDataPointers, AttributeType.VoidPointer, pointerArray.Length, pp)
                .Set(AttributeName.VariantPackWorkspace, AttributeType.VoidPointer, 1, &workspace)
                .Complete();
        int status = cudnnBackendExecute(handle, plan.Handle, pack.Handle);
        if (status != StatusSuccess)
            throw new SettingException(Setting.Attention, $"{Describe(status, $"cudnnBackendExecute (SDPA {SdpaForwardGraph.Describe(shape)})")}; the own attention kernel runs without cuDNN");
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
        var pointers = stackalloc nint[15] { q, k, v, o, stats, (nint)(&scale), At(scalars, 0), At(scalars, 1), At(scalars, 2), At(scalars, 3),
            At(scalars, 4), At(scalars, 5), At(scalars, 6), At(scalars, 7), (nint)(&mask) };
        using var pack = new CudnnDescriptor(DescriptorType.VariantPack);
        pack.Set(AttributeName.VariantPackUniqueIds, AttributeType.Int64, count, ids)
            .Set(AttributeName.VariantPackDataPointers, AttributeType.VoidPointer, count, pointers)
            .Set(AttributeName.VariantPackWorkspace, AttributeType.VoidPointer, 1, &workspace)
            .Complete();
        int status = cudnnBackendExecute(handle, plan.Handle, pack.Handle);
        if (status != StatusSuccess)
            throw new SettingException(Setting.AttentionDtype, $": {Describe(status, $"cudnnBackendExecute (SDPA {SdpaForwardGraph.Describe(shape)})")}; rerun without it", "fp8");
    }

    public void Dispose()
    {
        foreach (var d in descriptors) d.Dispose();
        descriptors.Clear();
    }
}
