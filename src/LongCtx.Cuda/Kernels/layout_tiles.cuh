// The per-64-row summaries of a token layout (DeviceLayout.TileSummaries) as the flash-attention kernels read them
// (attention.cu, attention_wgmma.cu): whether a tile of queries can see a tile of keys at all, the summary of a run
// of tiles, and the work a block of either kernel has. KernelCompiler puts this file in place of its #include line.

struct TileInfo { int seq; int min_pos; int max_pos; }; // sequence (-1: several), min and max position

// Whether query tile q sees none of key tile k (the engine's mask rule, judged on summaries): every key after every
// query, or (a sliding window of `window` positions; INT_MAX: none) every key at least `window` positions before
// every query. Positions are non-negative, so the differences do not overflow.
__device__ __forceinline__ bool tile_hidden(const TileInfo& q, const TileInfo& k, int window) {
    const bool out_of_reach = k.min_pos > q.max_pos || q.min_pos - k.max_pos >= window;
    if (q.seq >= 0 && k.seq >= 0) return q.seq != k.seq || out_of_reach;
    return out_of_reach;
}

// Whether every query of tile q sees every key of tile k: one sequence, every key at or before every query and within
// the window of each. Such tiles skip the per-element test.
__device__ __forceinline__ bool tile_visible(const TileInfo& q, const TileInfo& k, int window) {
    return q.seq >= 0 && k.seq >= 0 && q.seq == k.seq && k.max_pos <= q.min_pos && q.max_pos - k.min_pos < window;
}

// Whether a query of sequence qs at qp sees a key of sequence ks at kp.
__device__ __forceinline__ bool sees(int qs, int qp, int ks, int kp, int window) {
    return ks == qs && kp <= qp && qp - kp < window;
}

// The soft cap (Gemma 2) of a score in the kernels' log2 domain: cap·tanh(s·scale / cap)·log2(e), from
// cap_in = scale / cap and cap_out = cap·log2(e); the softmax then takes the result as it is (multiplier 1).
__device__ __forceinline__ float soft_capped(float s, float cap_in, float cap_out) { return tanhf(s * cap_in) * cap_out; }

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

// What one block of the flash-attention kernels computes (their grid: x query tiles of bq rows, longest first; y
// query heads; z key splits). Split-K (short query blocks against long caches): block z covers key tiles
// [z·tiles_per_split, (z+1)·tiles_per_split) of bk keys and writes its own partial output and LSE, from row
// z·tq of each, merged afterwards.
struct BlockWork {
    int tile, q0, h, g;        // query tile and its first row, query head and its KV head
    int first_tile, key_tiles; // the key tiles [first_tile, key_tiles) this block may see
    long part_row;             // the first row of this split's partial output and LSE
    TileInfo qt;               // the query tile's summary
};

__device__ __forceinline__ BlockWork block_work(int bq, int bk, int summary, const TileInfo* q_tiles, int tq, int tk, int heads, int kv_heads, int tiles_per_split) {
    BlockWork w;
    w.tile = gridDim.x - 1 - blockIdx.x;
    w.q0 = w.tile * bq;
    w.h = blockIdx.y;
    w.g = w.h / (heads / kv_heads);
    w.first_tile = blockIdx.z * tiles_per_split;
    w.key_tiles = min((tk + bk - 1) / bk, w.first_tile + tiles_per_split);
    w.part_row = (long)blockIdx.z * tq;
    w.qt = summary_of(q_tiles, w.tile * (bq / summary), bq / summary, (tq + summary - 1) / summary);
    return w;
}
