// The per-64-row summaries of a token layout (DeviceLayout.TileSummaries) as the flash-attention kernels read them
// (attention.cu, attention_wgmma.cu): whether a tile of queries can see a tile of keys at all, and the summary of
// a run of tiles. KernelCompiler puts this file in place of its #include line.

struct TileInfo { int seq; int min_pos; int max_pos; }; // sequence (-1: several), min and max position

// Whether query tile q sees none of key tile k (the engine's mask rule, judged on summaries).
__device__ __forceinline__ bool tile_hidden(const TileInfo& q, const TileInfo& k) {
    if (q.seq >= 0 && k.seq >= 0) return q.seq != k.seq || k.min_pos > q.max_pos;
    return k.min_pos > q.max_pos;
}

// The summary of n consecutive summaries from `first` (those that exist: `count` in all), merged.
__device__ __forceinline__ TileInfo summary_of(const TileInfo* tiles, int first, int n, int count) {
    TileInfo t = tiles[first];
    for (int i = first + 1; i < first + n && i < count; i++) {
        TileInfo u = tiles[i];
        t.seq = t.seq >= 0 && t.seq == u.seq ? t.seq : -1;
        t.min_pos = min(t.min_pos, u.min_pos);
        t.max_pos = max(t.max_pos, u.max_pos);
    }
    return t;
}
