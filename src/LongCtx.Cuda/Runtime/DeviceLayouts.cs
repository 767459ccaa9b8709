using System.Runtime.CompilerServices;
using LongCtx.Tensors;

namespace LongCtx.Cuda.Runtime;

/// <summary>
/// A token layout as the kernels read it: sequence ids, positions and per-64-row tile summaries
/// (sequence or -1, min and max position) in device memory. Built once per layout object and kept as long
/// as the layout lives, since every layer of a pass reuses the same layouts.
/// </summary>
internal sealed class DeviceLayout(CudaTensor seqIds, CudaTensor positions, CudaTensor tiles) : IDisposable
{
    public const int Tile = 64;
    public CudaTensor SeqIds => seqIds;
    public CudaTensor Positions => positions;
    public CudaTensor Tiles => tiles;

    ~DeviceLayout() => Dispose();

    public void Dispose()
    {
        GC.SuppressFinalize(this);
        lock (this)
        {
            seqIds.Dispose();
            positions.Dispose();
            tiles.Dispose();
        }
    }

    public static int[] TileSummaries(TokenLayout layout)
    {
        int n = (layout.Count + Tile - 1) / Tile;
        var info = new int[Math.Max(1, n) * 3];
        for (int i = 0; i < n; i++)
        {
            int start = i * Tile, end = Math.Min(layout.Count, start + Tile);
            int seq = layout.SeqIds[start], min = int.MaxValue, max = int.MinValue;
            for (int j = start; j < end; j++)
            {
                if (layout.SeqIds[j] != seq) seq = -1;
                min = Math.Min(min, layout.Positions[j]);
                max = Math.Max(max, layout.Positions[j]);
            }
            info[3 * i] = seq;
            info[3 * i + 1] = min;
            info[3 * i + 2] = max;
        }
        return info;
    }
}

/// <summary>The device copies of layouts, keyed weakly by the layout object.</summary>
internal sealed class DeviceLayouts(Func<int[], CudaTensor> upload)
{
    private readonly ConditionalWeakTable<TokenLayout, DeviceLayout> _table = new();

    public DeviceLayout Of(TokenLayout layout) => _table.GetValue(layout, l =>
        new DeviceLayout(upload(l.Count == 0 ? [0] : l.SeqIds), upload(l.Count == 0 ? [0] : l.Positions), upload(DeviceLayout.TileSummaries(l))));
}
