using LongCtx.Cuda.Runtime;

namespace LongCtx.Cuda.Attention;

/// <summary>Partial attention results merged by log-sum-exp (Kernels/elementwise.cu): by the backend's merges and by a split flash call.</summary>
internal static class LseMerge
{
    private const string Elementwise = "elementwise.cu";

    /// <summary>outAcc, lseAcc ← the merge of themselves with outPart, lsePart.</summary>
    public static void Merge(CudaDevice device, CudaTensor outputAccumulator, CudaTensor lseAccumulator, CudaTensor outputPart, CudaTensor lsePart)
    {
        long rows = lseAccumulator.Length;
        if (rows == 0) return;
        Merge(device, outputAccumulator.Pointer, lseAccumulator.Pointer, outputPart.Pointer, lsePart.Pointer, rows, (int)(outputAccumulator.Length / rows));
    }

    /// <summary>The same on raw rows: <paramref name="rows"/> rows of <paramref name="d"/> bf16 values and an LSE each.</summary>
    public static void Merge(CudaDevice device, nint oa, nint lseAccumulator, nint op, nint lsePart, long rows, int d)
    {
        // merge_attention_vec8: d/8 threads a row, a power of two up to a warp.
        int perRow = d / 8;
        if (d % 8 == 0 && perRow <= 32 && (perRow & (perRow - 1)) == 0 && Launches.Vectorisable(d, oa, op))
            device.Launch(device.Function(Elementwise, "merge_attention_vec8"), ((uint)((rows * perRow + 255) / 256), 1), 256, 0, oa, lseAccumulator, op, lsePart, rows, d);
        else
            device.Launch(device.Function(Elementwise, "merge_attention"), ((uint)((rows * 32 + 255) / 256), 1), 256, 0, oa, lseAccumulator, op, lsePart, rows, d);
    }
}
