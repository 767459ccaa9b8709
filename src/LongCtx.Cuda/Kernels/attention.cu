// Flash attention with tensor cores (mma.sync m16n8k16, bf16 in, fp32 accumulate), the FlashAttention-2
// scheme: a block of 4 warps owns 128 query rows of one head, each warp two 16-row MMA tiles held in
// registers (so every K or V fragment read from shared memory feeds four MMAs: shared-memory bandwidth,
// not the tensor cores, bounds a one-tile-per-warp kernel on Hopper). K and V tiles of 32 keys are staged in
// shared memory with cp.async, double-buffered (the next visible tile loads while this one is computed), and
// read into fragments with ldmatrix; scores, the online softmax and the output accumulator stay in registers.
// The mask is the engine's one rule — a query sees a key of the same sequence at a position not after its
// own — judged per tile from (sequence, min, max position) summaries of 64 rows, so hidden tiles are skipped
// and fully visible ones skip the per-element test. Writes output and the natural-log LSE (-inf, output 0
// for a row that saw nothing). HEAD_DIM is fixed at compile time (a multiple of 16).
#include <cuda_bf16.h>
typedef __nv_bfloat16 bf16;
// NVRTC has no <math.h>: the infinity the kernels need, spelled out.
#define INFINITY __int_as_float(0x7f800000)

#define D HEAD_DIM
#define MT 2                 // 16-row MMA tiles per warp
#define BQ (4 * 16 * MT)     // query rows per block
#define BK 32                // keys per tile
#define SUMMARY 64           // rows per layout summary (DeviceLayout.Tile)
#define LDS (D + 8)

__device__ __forceinline__ unsigned smem_addr(const void* p) { return static_cast<unsigned>(__cvta_generic_to_shared(p)); }

// Four 8x8 bf16 matrices from shared memory; lane l gives the address of row l % 8 of matrix l / 8.
__device__ __forceinline__ void ldmatrix_x4(unsigned* r, const bf16* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
        : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(p)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(unsigned* r, const bf16* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
        : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(p)));
}

// 16 bytes global -> shared without passing through registers; bytes = 0 writes zeros (rows past the end).
__device__ __forceinline__ void cp_async16(bf16* dst, const bf16* src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(smem_addr(dst)), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;"); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;" :: "n"(N)); }

struct TileInfo { int seq; int min_pos; int max_pos; };

// Whether query tile q sees none of key tile k (same rule as the engine's mask, judged on summaries).
__device__ __forceinline__ bool tile_hidden(const TileInfo& q, const TileInfo& k) {
    if (q.seq >= 0 && k.seq >= 0) return q.seq != k.seq || k.min_pos > q.max_pos;
    return k.min_pos > q.max_pos;
}


__device__ __forceinline__ unsigned pack2(float a, float b) {
    __nv_bfloat162 v = __floats2bfloat162_rn(a, b);
    return *reinterpret_cast<unsigned*>(&v);
}

__device__ __forceinline__ void mma16816(float* c, const unsigned* a, const unsigned* b) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ float quad_max(float v) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}

__device__ __forceinline__ float quad_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// Stages key tile kt of KV head g into a buffer: K and V rows by cp.async, sequence ids and positions by plain stores.
__device__ __forceinline__ void load_tile(bf16* sk, bf16* sv, int* s_seq, int* s_pos, const bf16* k, const bf16* v,
                                          const int* k_seq, const int* k_pos, int kt, int tk, int g, long kv_stride) {
    const int k0 = kt * BK;
    for (int i = threadIdx.x; i < BK * (D / 8); i += blockDim.x) {
        int r = i / (D / 8), c = (i % (D / 8)) * 8;
        bool in = k0 + r < tk;
        long off = in ? (long)(k0 + r) * kv_stride + g * D + c : 0;
        cp_async16(sk + r * LDS + c, k + off, in ? 16 : 0);
        cp_async16(sv + r * LDS + c, v + off, in ? 16 : 0);
    }
    if (threadIdx.x < BK) {
        int j = k0 + threadIdx.x;
        s_seq[threadIdx.x] = j < tk ? k_seq[j] : -3;
        s_pos[threadIdx.x] = j < tk ? k_pos[j] : 0x7fffffff;
    }
}

// The summary of this block's query rows: the two 64-row summaries it spans, merged.
__device__ __forceinline__ TileInfo query_summary(const TileInfo* q_tiles, int tile, int tq) {
    const int count = (tq + SUMMARY - 1) / SUMMARY, first = tile * (BQ / SUMMARY);
    TileInfo t = q_tiles[first];
    for (int i = first + 1; i < first + BQ / SUMMARY && i < count; i++) {
        TileInfo u = q_tiles[i];
        t.seq = t.seq >= 0 && t.seq == u.seq ? t.seq : -1;
        t.min_pos = min(t.min_pos, u.min_pos);
        t.max_pos = max(t.max_pos, u.max_pos);
    }
    return t;
}

// Key tile kt lies inside summary kt / 2: hidden or fully visible there means the same for the tile.
__device__ __forceinline__ int next_visible_key_tile(const TileInfo* k_tiles, const TileInfo& qt, int from, int count) {
    int t = from;
    while (t < count && tile_hidden(qt, k_tiles[t * BK / SUMMARY])) t++;
    return t;
}

extern "C" __global__ void __launch_bounds__(128) flash_attention(
    const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
    const int* __restrict__ q_seq, const int* __restrict__ q_pos, const int* __restrict__ k_seq, const int* __restrict__ k_pos,
    const TileInfo* __restrict__ q_tiles, const TileInfo* __restrict__ k_tiles,
    bf16* __restrict__ out, float* __restrict__ lse,
    int tq, int tk, int heads, int kv_heads, float scale_log2, int tiles_per_split)
{
    // Two buffers of K and V: [K0 | V0 | K1 | V1] in dynamic shared memory.
    extern __shared__ __align__(16) unsigned char smem[];
    bf16* tiles_kv = reinterpret_cast<bf16*>(smem);
    __shared__ int s_seq[2][BK], s_pos[2][BK];

    const int tile = blockIdx.x, h = blockIdx.y, g = h / (heads / kv_heads);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gr = lane >> 2, tc = lane & 3;
    const long q_stride = (long)heads * D, kv_stride = (long)kv_heads * D;
    const TileInfo qt = query_summary(q_tiles, tile, tq);
    // Split-K (decode, short query blocks against long caches): block z covers key tiles
    // [z·tiles_per_split, (z+1)·tiles_per_split) and writes its own partial output and LSE, merged afterwards.
    const int first_tile = blockIdx.z * tiles_per_split;
    const int key_tiles = min((tk + BK - 1) / BK, first_tile + tiles_per_split);
    out += (long)blockIdx.z * tq * q_stride;
    lse += (long)blockIdx.z * tq * heads;

    int kt = next_visible_key_tile(k_tiles, qt, first_tile, key_tiles);
    if (kt < key_tiles) load_tile(tiles_kv, tiles_kv + BK * LDS, s_seq[0], s_pos[0], k, v, k_seq, k_pos, kt, tk, g, kv_stride);
    cp_async_commit();

    // Rows gr and gr + 8 of each of the warp's MMA tiles; their query pieces as mma A fragments.
    int row[MT][2], seq[MT][2], pos[MT][2];
    unsigned qf[MT][D / 16][4];
    #pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        #pragma unroll
        for (int half = 0; half < 2; half++) {
            int r = tile * BQ + warp * 16 * MT + mt * 16 + gr + half * 8;
            row[mt][half] = r;
            seq[mt][half] = r < tq ? q_seq[r] : -2;
            pos[mt][half] = r < tq ? q_pos[r] : -1;
        }
        #pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            int c = kk * 16 + tc * 2;
            #pragma unroll
            for (int e = 0; e < 4; e++) {
                int r = row[mt][e & 1];
                qf[mt][kk][e] = r < tq ? *reinterpret_cast<const unsigned*>(q + r * q_stride + h * D + c + (e >> 1) * 8) : 0u;
            }
        }
    }

    float o[MT][D / 8][4];
    float m[MT][2], l[MT][2];
    #pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        #pragma unroll
        for (int i = 0; i < D / 8; i++) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.f;
        m[mt][0] = m[mt][1] = -INFINITY;
        l[mt][0] = l[mt][1] = 0.f;
    }

    int buf = 0;
    while (kt < key_tiles) {
        const int next = next_visible_key_tile(k_tiles, qt, kt + 1, key_tiles);
        if (next < key_tiles) {
            bf16* nk = tiles_kv + (buf ^ 1) * 2 * BK * LDS;
            load_tile(nk, nk + BK * LDS, s_seq[buf ^ 1], s_pos[buf ^ 1], k, v, k_seq, k_pos, next, tk, g, kv_stride);
        }
        cp_async_commit();
        cp_async_wait<1>(); // this tile's group has landed; the next one may still be in flight
        __syncthreads();

        const bf16* sk = tiles_kv + buf * 2 * BK * LDS;
        const bf16* sv = sk + BK * LDS;
        const int* ss = s_seq[buf];
        const int* sp = s_pos[buf];
        const TileInfo ki = k_tiles[kt * BK / SUMMARY];
        const bool full = qt.seq >= 0 && ki.seq >= 0 && qt.seq == ki.seq && ki.max_pos <= qt.min_pos && (kt + 1) * BK <= tk;

        // S = Q Kᵀ: per MMA tile 16 rows x 32 keys (4 accumulators of 16x8); one ldmatrix gives two key
        // tiles' B fragments, used by both MMA tiles.
        float s[MT][BK / 8][4];
        #pragma unroll
        for (int mt = 0; mt < MT; mt++)
            #pragma unroll
            for (int n = 0; n < BK / 8; n++) s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.f;
        #pragma unroll
        for (int n = 0; n < BK / 8; n += 2) {
            #pragma unroll
            for (int kk = 0; kk < D / 16; kk++) {
                unsigned b[4];
                const int mat = lane >> 3;
                ldmatrix_x4(b, sk + (n * 8 + (mat >> 1) * 8 + (lane & 7)) * LDS + kk * 16 + (mat & 1) * 8);
                #pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma16816(s[mt][n], qf[mt][kk], b);
                    mma16816(s[mt][n + 1], qf[mt][kk], b + 2);
                }
            }
        }

        #pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            float mx[2] = { -INFINITY, -INFINITY };
            #pragma unroll
            for (int n = 0; n < BK / 8; n++) {
                #pragma unroll
                for (int e = 0; e < 4; e++) {
                    float val = s[mt][n][e] * scale_log2;
                    if (!full) {
                        int col = n * 8 + tc * 2 + (e & 1), half = e >> 1;
                        if (ss[col] != seq[mt][half] || sp[col] > pos[mt][half]) val = -INFINITY;
                    }
                    s[mt][n][e] = val;
                    mx[e >> 1] = fmaxf(mx[e >> 1], val);
                }
            }
            #pragma unroll
            for (int half = 0; half < 2; half++) {
                const float top = fmaxf(m[mt][half], quad_max(mx[half]));
                // A row that has seen nothing yet keeps base 0 so exp2(-inf - base) = 0 and nothing becomes NaN.
                const float base = top == -INFINITY ? 0.f : top;
                const float alpha = exp2f(m[mt][half] - base);
                float sum = 0.f;
                #pragma unroll
                for (int n = 0; n < BK / 8; n++) {
                    s[mt][n][2 * half] = exp2f(s[mt][n][2 * half] - base);
                    s[mt][n][2 * half + 1] = exp2f(s[mt][n][2 * half + 1] - base);
                    sum += s[mt][n][2 * half] + s[mt][n][2 * half + 1];
                }
                l[mt][half] = l[mt][half] * alpha + sum;
                m[mt][half] = top;
                #pragma unroll
                for (int i = 0; i < D / 8; i++) { o[mt][i][2 * half] *= alpha; o[mt][i][2 * half + 1] *= alpha; }
            }
        }

        // O += P V: the score accumulators of two adjacent key tiles are exactly an A fragment; V's B
        // fragments come transposed from ldmatrix, two head-dim tiles per call, used by both MMA tiles.
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
                const int mat = lane >> 3;
                ldmatrix_x4_trans(b, sv + (j * 16 + (mat & 1) * 8 + (lane & 7)) * LDS + dn * 8 + (mat >> 1) * 8);
                #pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma16816(o[mt][dn], a[mt], b);
                    mma16816(o[mt][dn + 1], a[mt], b + 2);
                }
            }
        }
        __syncthreads(); // everyone is done with this buffer before it is refilled
        buf ^= 1;
        kt = next;
    }
    cp_async_wait<0>();

    const float ln2 = 0.6931471805599453f;
    #pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        #pragma unroll
        for (int half = 0; half < 2; half++) {
            const int r = row[mt][half];
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
