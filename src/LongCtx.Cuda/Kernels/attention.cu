// Flash attention with tensor cores (mma.sync m16n8k16, bf16 in, fp32 accumulate), the FlashAttention-2
// scheme: a block of 4 warps owns BQ query rows of one head, each warp MT 16-row MMA tiles (so every K or V
// fragment read from shared memory feeds MT MMAs: shared-memory bandwidth, not the tensor cores, bounds a
// one-tile-per-warp kernel on Hopper). The query tile sits in shared memory and its fragments are read again
// for every key tile: held in registers (64 of them at head dim 128) they pushed the kernel past 255 registers
// into spills. Key tiles of 64 rows: K and V have one buffer each, loaded with cp.async so that V of this tile
// arrives while S = QKᵀ is computed and K of the next visible tile while the softmax and PV run (two barriers a
// tile). Scores, the online softmax and the output accumulator stay in registers; the accumulator is rescaled
// only when some row's maximum grew (multiplying by exp2(0) = 1 changes nothing, so skipping it is exact).
// The mask is the engine's one rule — a query sees a key of the same sequence at a position not after its
// own, and on a sliding-window layer fewer than `window` positions before it — judged per tile from (sequence, min,
// max position) summaries of 64 rows, so hidden tiles are skipped and fully visible ones skip the per-element test.
// With `softcap` > 0 (Gemma 2) each scaled score becomes softcap·tanh(score / softcap) before the mask. Query tiles are taken longest first (the last rows of a
// causal block see the most keys), so the short ones fill the tail of the grid. Writes output and the
// natural-log LSE (-inf, output 0 for a row that saw nothing). HEAD_DIM is fixed at compile time (a multiple
// of 16 up to 256).
#include "tensor_core.cuh"
#include "layout_tiles.cuh"

#define D HEAD_DIM
// 16-row MMA tiles per warp: two up to head dim 128; at 256 one, else the accumulator alone (MT·D/2 floats
// a thread) would take every register.
#define MT (D > 128 ? 1 : 2)
#define BQ (4 * 16 * MT)     // query rows per block (CudaBackend.FlashKernelFor)
#define BK 64                // keys per tile (CudaBackend.FlashKernelFor)
#define SUMMARY 64           // rows per layout summary (DeviceLayout.Tile); a key tile is one summary
#define LDS (D + 8)          // a staged row, padded by 16 bytes so ldmatrix's 8 rows hit distinct banks

// Stages rows [first, first + BK) of one KV head's K or V (rows past `count` read as zeros) into a buffer.
__device__ __forceinline__ void load_rows(bf16* dst, const bf16* src, int first, int count, int g, long stride) {
    for (int i = threadIdx.x; i < BK * (D / 8); i += blockDim.x) {
        int r = i / (D / 8), c = (i % (D / 8)) * 8;
        bool in = first + r < count;
        cp_async16(dst + r * LDS + c, src + (in ? (long)(first + r) * stride + g * D + c : 0), in ? 16 : 0);
    }
}

// Key tile kt: its K rows by cp.async, its rows' sequence ids and positions by plain stores (past the end: a
// sequence no query has, so the per-element test hides them).
__device__ __forceinline__ void load_key_tile(bf16* sk, int* sk_seq, int* sk_pos, const bf16* k, const int* k_seq, const int* k_pos,
                                              int kt, int tk, int g, long kv_stride) {
    load_rows(sk, k, kt * BK, tk, g, kv_stride);
    if (threadIdx.x < BK) {
        int j = kt * BK + threadIdx.x;
        sk_seq[threadIdx.x] = j < tk ? k_seq[j] : -3;
        sk_pos[threadIdx.x] = j < tk ? k_pos[j] : 0x7fffffff;
    }
}

__device__ __forceinline__ int next_visible_key_tile(const TileInfo* k_tiles, const TileInfo& qt, int from, int count, int window) {
    int t = from;
    while (t < count && tile_hidden(qt, k_tiles[t], window)) t++;
    return t;
}

extern "C" __global__ void __launch_bounds__(128) flash_attention(
    const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
    const int* __restrict__ q_seq, const int* __restrict__ q_pos, const int* __restrict__ k_seq, const int* __restrict__ k_pos,
    const TileInfo* __restrict__ q_tiles, const TileInfo* __restrict__ k_tiles,
    bf16* __restrict__ out, float* __restrict__ lse,
    int tq, int tk, int heads, int kv_heads, float scale_log2, int tiles_per_split, int window, float softcap)
{
    // [Q tile | K tile | V tile] in dynamic shared memory, then the rows' sequence ids and positions.
    extern __shared__ __align__(16) unsigned char smem[];
    bf16* sq = reinterpret_cast<bf16*>(smem);
    bf16* sk = sq + BQ * LDS;
    bf16* sv = sk + BK * LDS;
    int* sq_seq = reinterpret_cast<int*>(sv + BK * LDS);
    int* sq_pos = sq_seq + BQ;
    int* sk_seq = sq_pos + BQ;
    int* sk_pos = sk_seq + BK;

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gr = lane >> 2, tc = lane & 3;
    const long q_stride = (long)heads * D, kv_stride = (long)kv_heads * D;
    const BlockWork work = block_work(BQ, BK, SUMMARY, q_tiles, tq, tk, heads, kv_heads, tiles_per_split);
    const int q0 = work.q0, h = work.h, g = work.g, first_tile = work.first_tile, key_tiles = work.key_tiles;
    const TileInfo qt = work.qt;
    out += work.part_row * q_stride;
    lse += work.part_row * heads;
    // Soft-capped scores leave soft_capped() already in the log2 domain: the softmax multiplies them by 1.
    const float cap_in = softcap > 0.f ? scale_log2 * 0.6931471805599453f / softcap : 0.f, cap_out = softcap * 1.4426950408889634f;
    const float multiplier = softcap > 0.f ? 1.f : scale_log2;

    // The query tile of head h (one cp.async group with the first key tile), and its rows' sequences and positions.
    for (int i = threadIdx.x; i < BQ * (D / 8); i += blockDim.x) {
        int r = i / (D / 8), c = (i % (D / 8)) * 8;
        bool in = q0 + r < tq;
        cp_async16(sq + r * LDS + c, q + (in ? (long)(q0 + r) * q_stride + h * D + c : 0), in ? 16 : 0);
    }
    for (int r = threadIdx.x; r < BQ; r += blockDim.x) {
        sq_seq[r] = q0 + r < tq ? q_seq[q0 + r] : -2;
        sq_pos[r] = q0 + r < tq ? q_pos[q0 + r] : -1;
    }
    int kt = next_visible_key_tile(k_tiles, qt, first_tile, key_tiles, window);
    if (kt < key_tiles) load_key_tile(sk, sk_seq, sk_pos, k, k_seq, k_pos, kt, tk, g, kv_stride);
    cp_async_commit();

    float o[MT][D / 8][4];
    float m[MT][2], l[MT][2]; // running maximum (scaled, log2 domain) and this thread's share of the row sum
    #pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        #pragma unroll
        for (int i = 0; i < D / 8; i++) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.f;
        m[mt][0] = m[mt][1] = -INFINITY;
        l[mt][0] = l[mt][1] = 0.f;
    }
    // ldmatrix addresses: A fragments of the warp's query rows (lanes 0-15 rows at column 0, 16-31 at column 8);
    // B fragments of two 8-key tiles (K) or two 8-dim tiles (V, transposed).
    const int mat = lane >> 3;
    const bf16* q_frag = sq + (warp * 16 * MT + (lane & 15)) * LDS + (lane >> 4) * 8;
    const bf16* k_frag = sk + ((mat >> 1) * 8 + (lane & 7)) * LDS + (mat & 1) * 8;
    const bf16* v_frag = sv + ((mat & 1) * 8 + (lane & 7)) * LDS + (mat >> 1) * 8;

    while (kt < key_tiles) {
        cp_async_wait<0>(); // K of this tile (and at first Q) has landed
        __syncthreads();    // ... for every thread, and every warp is done with V of the last tile
        load_rows(sv, v, kt * BK, tk, g, kv_stride);
        cp_async_commit();

        // S = Q Kᵀ: per MMA tile 16 rows x 64 keys (8 accumulators of 16x8).
        float s[MT][BK / 8][4];
        #pragma unroll
        for (int mt = 0; mt < MT; mt++)
            #pragma unroll
            for (int n = 0; n < BK / 8; n++) s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.f;
        #pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            unsigned a[MT][4];
            #pragma unroll
            for (int mt = 0; mt < MT; mt++) ldmatrix_x4(a[mt], q_frag + mt * 16 * LDS + kk * 16);
            #pragma unroll
            for (int n = 0; n < BK / 8; n += 2) {
                unsigned b[4];
                ldmatrix_x4(b, k_frag + n * 8 * LDS + kk * 16);
                #pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma16816(s[mt][n], a[mt], b);
                    mma16816(s[mt][n + 1], a[mt], b + 2);
                }
            }
        }

        if (softcap > 0.f) {
            #pragma unroll
            for (int mt = 0; mt < MT; mt++)
                #pragma unroll
                for (int n = 0; n < BK / 8; n++)
                    #pragma unroll
                    for (int e = 0; e < 4; e++) s[mt][n][e] = soft_capped(s[mt][n][e], cap_in, cap_out);
        }
        const bool full = tile_visible(qt, k_tiles[kt], window) && (kt + 1) * BK <= tk;
        if (!full) {
            #pragma unroll
            for (int mt = 0; mt < MT; mt++)
                #pragma unroll
                for (int half = 0; half < 2; half++) {
                    const int r = warp * 16 * MT + mt * 16 + gr + half * 8, rs = sq_seq[r], rp = sq_pos[r];
                    #pragma unroll
                    for (int n = 0; n < BK / 8; n++)
                        #pragma unroll
                        for (int e = 0; e < 2; e++) {
                            const int col = n * 8 + tc * 2 + e;
                            if (!sees(rs, rp, sk_seq[col], sk_pos[col], window)) s[mt][n][2 * half + e] = -INFINITY;
                        }
                }
        }
        const int next = next_visible_key_tile(k_tiles, qt, kt + 1, key_tiles, window);

        cp_async_wait<0>(); // V of this tile has landed
        __syncthreads();    // ... for every thread, and every warp is done with K and the key rows' summaries
        if (next < key_tiles) load_key_tile(sk, sk_seq, sk_pos, k, k_seq, k_pos, next, tk, g, kv_stride);
        cp_async_commit();

        // Online softmax in the log2 domain: p = exp2(s·scale − m) as one FMA and one exp2 per score.
        bool grew = false;
        float alpha[MT][2];
        #pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            #pragma unroll
            for (int half = 0; half < 2; half++) {
                float mx = -INFINITY;
                #pragma unroll
                for (int n = 0; n < BK / 8; n++) mx = fmaxf(mx, fmaxf(s[mt][n][2 * half], s[mt][n][2 * half + 1]));
                const float top = fmaxf(m[mt][half], quad_max(mx) * multiplier);
                // A row that has seen nothing yet keeps base 0 so exp2(-inf - base) = 0 and nothing becomes NaN.
                const float base = top == -INFINITY ? 0.f : top;
                alpha[mt][half] = exp2f(m[mt][half] - base);
                grew |= top != m[mt][half];
                float sum = 0.f;
                #pragma unroll
                for (int n = 0; n < BK / 8; n++) {
                    s[mt][n][2 * half] = exp2f(fmaf(s[mt][n][2 * half], multiplier, -base));
                    s[mt][n][2 * half + 1] = exp2f(fmaf(s[mt][n][2 * half + 1], multiplier, -base));
                    sum += s[mt][n][2 * half] + s[mt][n][2 * half + 1];
                }
                l[mt][half] = l[mt][half] * alpha[mt][half] + sum;
                m[mt][half] = top;
            }
        }
        // Once the maxima settle (most tiles of a long row), no row of the warp needs its accumulator rescaled.
        if (__any_sync(0xffffffffu, grew)) {
            #pragma unroll
            for (int mt = 0; mt < MT; mt++)
                #pragma unroll
                for (int i = 0; i < D / 8; i++) {
                    o[mt][i][0] *= alpha[mt][0]; o[mt][i][1] *= alpha[mt][0];
                    o[mt][i][2] *= alpha[mt][1]; o[mt][i][3] *= alpha[mt][1];
                }
        }

        // O += P V: the score accumulators of two adjacent key tiles are exactly an A fragment; V's B
        // fragments come transposed from ldmatrix, two head-dim tiles per call, used by every MMA tile.
        #pragma unroll
        for (int j = 0; j < BK / 16; j++) {
            unsigned a[MT][4];
            #pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                a[mt][0] = pack2(s[mt][2 * j][0], s[mt][2 * j][1]);
                a[mt][1] = pack2(s[mt][2 * j][2], s[mt][2 * j][3]);
                a[mt][2] = pack2(s[mt][2 * j + 1][0], s[mt][2 * j + 1][1]);
                a[mt][3] = pack2(s[mt][2 * j + 1][2], s[mt][2 * j + 1][3]);
            }
            #pragma unroll
            for (int dn = 0; dn < D / 8; dn += 2) {
                unsigned b[4];
                ldmatrix_x4_trans(b, v_frag + j * 16 * LDS + dn * 8);
                #pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma16816(o[mt][dn], a[mt], b);
                    mma16816(o[mt][dn + 1], a[mt], b + 2);
                }
            }
        }
        kt = next;
    }
    cp_async_wait<0>();

    const float ln2 = 0.6931471805599453f;
    #pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        #pragma unroll
        for (int half = 0; half < 2; half++) {
            const int r = q0 + warp * 16 * MT + mt * 16 + gr + half * 8;
            const float total = quad_sum(l[mt][half]);
            if (r >= tq) continue;
            const float inv = total > 0.f ? 1.f / total : 0.f;
            #pragma unroll
            for (int dn = 0; dn < D / 8; dn++)
                *reinterpret_cast<unsigned*>(out + r * q_stride + h * D + dn * 8 + tc * 2) = pack2(o[mt][dn][2 * half] * inv, o[mt][dn][2 * half + 1] * inv);
            if (tc == 0) lse[(long)r * heads + h] = total > 0.f ? (m[mt][half] + log2f(total)) * ln2 : -INFINITY;
        }
    }
}
