// Flash attention on Hopper's warpgroup MMA (wgmma.mma_async, sm_90a), head dim 128: the same contract as
// attention.cu (the engine's mask rule from per-row sequences and positions, hidden tiles skipped by their 64-row
// summaries, split-K blocks, output and natural-log LSE), a different engine. A block of two warpgroups owns 128
// query rows of one head, 64 a warpgroup; key tiles of 128 rows. Where attention.cu feeds mma.sync from
// registers that ldmatrix filled (shared-memory bandwidth bounds it at ~300 TFLOP/s on an H200), wgmma reads Q and
// K for S = QKᵀ, and V for O += PV, straight from shared memory through matrix descriptors; P goes from the score
// accumulators to the A operand in registers without touching shared memory. K and V tiles are double-buffered:
// the cp.async of the next visible tile is issued before this tile's MMAs and has a whole tile's work to land.
// The two warpgroups synchronise only once a tile, so one's softmax overlaps the other's MMAs.
//
// Shared-memory tiles use wgmma's 128-byte swizzle: a tile of R rows is two panels [R][64 dims] of 128-byte rows,
// the 16-byte chunk c of row r stored at chunk c ^ (r % 8), every panel 1024-byte aligned. Q and K are read
// K-major (dims contiguous), V MN-major (the same layout, read transposed: PV's reduction runs over keys).
#include "tensor_core.cuh"

#define D 128
#define BQ 128       // query rows per block (CudaBackend.FlashKernelFor)
#define BK 128       // keys per tile (CudaBackend.FlashKernelFor)
#define SUMMARY 64   // rows per layout summary (DeviceLayout.Tile)
#define THREADS 256
#define PANEL(rows) ((rows) * 128) // bytes of one 64-dim panel of a tile

struct TileInfo { int seq; int min_pos; int max_pos; };

__device__ __forceinline__ bool tile_hidden(const TileInfo& q, const TileInfo& k) {
    if (q.seq >= 0 && k.seq >= 0) return q.seq != k.seq || k.min_pos > q.max_pos;
    return k.min_pos > q.max_pos;
}

// The summary of n consecutive 64-row summaries from `first` (those that exist: `count` in all), merged.
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

__device__ __forceinline__ TileInfo key_summary(const TileInfo* k_tiles, int kt, int tk) {
    return summary_of(k_tiles, kt * (BK / SUMMARY), BK / SUMMARY, (tk + SUMMARY - 1) / SUMMARY);
}

__device__ __forceinline__ int next_visible_key_tile(const TileInfo* k_tiles, const TileInfo& qt, int from, int count, int tk) {
    int t = from;
    while (t < count && tile_hidden(qt, key_summary(k_tiles, t, tk))) t++;
    return t;
}

__device__ __forceinline__ void cp_async16_at(unsigned dst, const bf16* src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(dst), "l"(src), "r"(bytes));
}

// Rows [first, first + R) of columns [col, col + 128) of a row-major matrix (rows past `count` as zeros) into a
// swizzled tile at shared address dst.
template <int R>
__device__ __forceinline__ void stage(unsigned dst, const bf16* src, int first, int count, long stride, int col) {
    for (int i = threadIdx.x; i < R * 16; i += THREADS) {
        const int r = i >> 4, ch = i & 15;
        const bool in = first + r < count;
        const unsigned at = dst + (ch >> 3) * PANEL(R) + r * 128 + (((ch & 7) ^ (r & 7)) << 4);
        cp_async16_at(at, src + (in ? (long)(first + r) * stride + col + ch * 8 : 0), in ? 16 : 0);
    }
}

// A shared-memory matrix descriptor with the 128-byte swizzle: start address, leading and stride byte offsets.
__device__ __forceinline__ unsigned long long sw128_desc(unsigned addr, unsigned leading, unsigned stride) {
    return (unsigned long long)((addr & 0x3FFFF) >> 4) | ((unsigned long long)(leading >> 4) << 16)
         | ((unsigned long long)(stride >> 4) << 32) | (1ull << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
// Until at most N committed groups of this warpgroup's MMAs are still running.
template <int N> __device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;" :: "n"(N) : "memory"); }
// After the wait: the accumulators are defined here, so no read of them moves above it.
__device__ __forceinline__ void settled(float (&d)[64]) {
    #pragma unroll
    for (int i = 0; i < 64; i++) asm volatile("" : "+f"(d[i]) :: "memory");
}
// Writes by cp.async (the generic proxy) made visible to wgmma's reads (the async proxy).
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }

// d (64 x 128, fp32) = A·B (+ d when accumulate), A from shared memory (64 x 16, K-major), B from shared memory
// (16 x 128, K-major): one k-step of S = QKᵀ.
__device__ __forceinline__ void wgmma_ss(float (&d)[64], unsigned long long a, unsigned long long b, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
        "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      :
      "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
      "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
      "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
      "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
      "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
      "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
      "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
      "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(a), "l"(b), "r"(accumulate));
}

// d += A·B, A (64 x 16 bf16) from registers in the mma.sync fragment layout, B from shared memory MN-major
// (transposed): one k-step (16 keys) of O += PV.
__device__ __forceinline__ void wgmma_rs(float (&d)[64], const unsigned* a, unsigned long long b) {
    asm volatile("{\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
        "}, {%64, %65, %66, %67}, %68, 1, 1, 1, 1;\n}\n"
      :
      "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
      "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
      "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
      "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
      "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
      "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
      "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
      "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
}

extern "C" __global__ void __launch_bounds__(THREADS, 1) flash_attention_wgmma(
    const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
    const int* __restrict__ q_seq, const int* __restrict__ q_pos, const int* __restrict__ k_seq, const int* __restrict__ k_pos,
    const TileInfo* __restrict__ q_tiles, const TileInfo* __restrict__ k_tiles,
    bf16* __restrict__ out, float* __restrict__ lse,
    int tq, int tk, int heads, int kv_heads, float scale_log2, int tiles_per_split)
{
    // [Q | K buffer 0, 1 | V buffer 0, 1] from the first 1024-byte boundary of dynamic shared memory, then the
    // query rows' and both key buffers' sequence ids and positions.
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const unsigned raw = smem_addr(smem_raw), base = (raw + 1023) & ~1023u;
    const unsigned sq = base, sk = sq + 2 * PANEL(BQ), sv = sk + 4 * PANEL(BK);
    int* sq_seq = reinterpret_cast<int*>(smem_raw + (base - raw) + 2 * PANEL(BQ) + 8 * PANEL(BK));
    int* sq_pos = sq_seq + BQ;
    int* sk_seq = sq_pos + BQ; // [2][BK]
    int* sk_pos = sk_seq + 2 * BK;

    const int tile = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, g = h / (heads / kv_heads);
    const int wg = threadIdx.x >> 7, warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31, gr = lane >> 2, tc = lane & 3;
    const long q_stride = (long)heads * D, kv_stride = (long)kv_heads * D;
    const TileInfo qt = summary_of(q_tiles, tile * (BQ / SUMMARY), BQ / SUMMARY, (tq + SUMMARY - 1) / SUMMARY);
    const int first_tile = blockIdx.z * tiles_per_split;
    const int key_tiles = min((tk + BK - 1) / BK, first_tile + tiles_per_split);
    out += (long)blockIdx.z * tq * q_stride;
    lse += (long)blockIdx.z * tq * heads;

    // Key tile kt into buffer b: K and V by cp.async, the rows' sequences and positions by plain stores (past the
    // end: a sequence no query has).
    auto stage_key_tile = [&](int b, int kt) {
        stage<BK>(sk + b * 2 * PANEL(BK), k, kt * BK, tk, kv_stride, g * D);
        stage<BK>(sv + b * 2 * PANEL(BK), v, kt * BK, tk, kv_stride, g * D);
        if (threadIdx.x < BK) {
            const int j = kt * BK + threadIdx.x;
            sk_seq[b * BK + threadIdx.x] = j < tk ? k_seq[j] : -3;
            sk_pos[b * BK + threadIdx.x] = j < tk ? k_pos[j] : 0x7fffffff;
        }
    };

    const int q0 = tile * BQ;
    stage<BQ>(sq, q, q0, tq, q_stride, h * D);
    if (threadIdx.x < BQ) {
        sq_seq[threadIdx.x] = q0 + threadIdx.x < tq ? q_seq[q0 + threadIdx.x] : -2;
        sq_pos[threadIdx.x] = q0 + threadIdx.x < tq ? q_pos[q0 + threadIdx.x] : -1;
    }
    int kt = next_visible_key_tile(k_tiles, qt, first_tile, key_tiles, tk), buf = 0;
    int next = kt < key_tiles ? next_visible_key_tile(k_tiles, qt, kt + 1, key_tiles, tk) : key_tiles;
    if (kt < key_tiles) stage_key_tile(0, kt);
    cp_async_commit();
    cp_async_wait<0>();
    fence_proxy_async();
    __syncthreads(); // Q and the first key tile have landed for every thread

    float o[64];
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f}; // running maximum (log2 domain), this thread's share of the row sum
    #pragma unroll
    for (int i = 0; i < 64; i++) o[i] = 0.f;
    // This thread's accumulator element e of 8-column group i sits at row 16·warp + gr (+8 for e >= 2) of the
    // warpgroup's 64, column 8i + 2tc + (e & 1): the mma.sync layout, one 16-row tile per warp.
    const int row0 = wg * 64 + warp * 16 + gr;

    // Each tile: S = QKᵀ; once it is done, and the last tile's PV in both warpgroups, the next visible tile is staged
    // into the buffer that PV read; this tile's O += PV is issued and left running across the wait and the barrier
    // for the next tile's rows. (Leaving PV running into the next tile's S, with a wait_group 1, made ptxas
    // serialise the MMAs: 356 against 404 TFLOP/s causal at 32K.)
    while (kt < key_tiles) {
        // S = Q Kᵀ, 64 rows x 128 keys per warpgroup, in 8 k-steps of 16 dims (4 per panel, 32 bytes apart).
        const unsigned kb = sk + buf * 2 * PANEL(BK), vb = sv + buf * 2 * PANEL(BK);
        float s[64];
        wgmma_fence();
        #pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            const unsigned at = (kk & 3) * 32;
            wgmma_ss(s, sw128_desc(sq + (kk >> 2) * PANEL(BQ) + wg * 64 * 128 + at, 16, 1024),
                        sw128_desc(kb + (kk >> 2) * PANEL(BK) + at, 16, 1024), kk > 0);
        }
        wgmma_commit();
        // Summaries read while the MMAs run: this tile's, and which tile comes after the next.
        const TileInfo ki = key_summary(k_tiles, kt, tk);
        const int after = next < key_tiles ? next_visible_key_tile(k_tiles, qt, next + 1, key_tiles, tk) : key_tiles;
        wgmma_wait<0>();
        settled(s);
        __syncthreads(); // both warpgroups are done with the last tile's PV: its buffer is free
        if (next < key_tiles) stage_key_tile(buf ^ 1, next);
        cp_async_commit();

        const bool full = qt.seq >= 0 && ki.seq >= 0 && qt.seq == ki.seq && ki.max_pos <= qt.min_pos && (kt + 1) * BK <= tk;
        if (!full) {
            const int* ks = sk_seq + buf * BK;
            const int* kp = sk_pos + buf * BK;
            #pragma unroll
            for (int half = 0; half < 2; half++) {
                const int rs = sq_seq[row0 + half * 8], rp = sq_pos[row0 + half * 8];
                #pragma unroll
                for (int i = 0; i < BK / 8; i++)
                    #pragma unroll
                    for (int e = 0; e < 2; e++) {
                        const int col = i * 8 + tc * 2 + e;
                        if (ks[col] != rs || kp[col] > rp) s[4 * i + 2 * half + e] = -INFINITY;
                    }
            }
        }

        // Online softmax in the log2 domain, as attention.cu.
        bool grew = false;
        float alpha[2];
        #pragma unroll
        for (int half = 0; half < 2; half++) {
            float mx = -INFINITY;
            #pragma unroll
            for (int i = 0; i < BK / 8; i++) mx = fmaxf(mx, fmaxf(s[4 * i + 2 * half], s[4 * i + 2 * half + 1]));
            const float top = fmaxf(m[half], quad_max(mx) * scale_log2);
            const float base_ = top == -INFINITY ? 0.f : top;
            alpha[half] = exp2f(m[half] - base_);
            grew |= top != m[half];
            float sum = 0.f;
            #pragma unroll
            for (int i = 0; i < BK / 8; i++) {
                s[4 * i + 2 * half] = exp2f(fmaf(s[4 * i + 2 * half], scale_log2, -base_));
                s[4 * i + 2 * half + 1] = exp2f(fmaf(s[4 * i + 2 * half + 1], scale_log2, -base_));
                sum += s[4 * i + 2 * half] + s[4 * i + 2 * half + 1];
            }
            l[half] = l[half] * alpha[half] + sum;
            m[half] = top;
        }
        if (__any_sync(0xffffffffu, grew)) {
            #pragma unroll
            for (int i = 0; i < D / 8; i++) {
                o[4 * i] *= alpha[0]; o[4 * i + 1] *= alpha[0];
                o[4 * i + 2] *= alpha[1]; o[4 * i + 3] *= alpha[1];
            }
        }

        // P in bf16 as the A operand: k-step kk (keys 16kk..16kk+15) is column groups 2kk and 2kk+1.
        unsigned p[BK / 4];
        #pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            p[4 * kk] = pack2(s[8 * kk], s[8 * kk + 1]);
            p[4 * kk + 1] = pack2(s[8 * kk + 2], s[8 * kk + 3]);
            p[4 * kk + 2] = pack2(s[8 * kk + 4], s[8 * kk + 5]);
            p[4 * kk + 3] = pack2(s[8 * kk + 6], s[8 * kk + 7]);
        }
        // O += P V in 8 k-steps of 16 keys: V read transposed, the two 64-dim panels a leading offset apart and
        // each 8 keys 1024 bytes on.
        wgmma_fence();
        #pragma unroll
        for (int kk = 0; kk < BK / 16; kk++)
            wgmma_rs(o, p + 4 * kk, sw128_desc(vb + kk * 16 * 128, PANEL(BK), 1024));
        wgmma_commit();
        cp_async_wait<0>(); // the next tile's K and V have landed ...
        fence_proxy_async();
        __syncthreads();    // ... for every thread
        wgmma_wait<0>();    // PV, which ran across the wait and the barrier
        settled(o);
        buf ^= 1;
        kt = next;
        next = after;
    }

    const float ln2 = 0.6931471805599453f;
    #pragma unroll
    for (int half = 0; half < 2; half++) {
        const int r = q0 + row0 + half * 8;
        const float total = quad_sum(l[half]);
        if (r >= tq) continue;
        const float inv = total > 0.f ? 1.f / total : 0.f;
        #pragma unroll
        for (int i = 0; i < D / 8; i++)
            *reinterpret_cast<unsigned*>(out + r * q_stride + h * D + i * 8 + tc * 2) = pack2(o[4 * i + 2 * half] * inv, o[4 * i + 2 * half + 1] * inv);
        if (tc == 0) lse[(long)r * heads + h] = total > 0.f ? (m[half] + log2f(total)) * ln2 : -INFINITY;
    }
}
