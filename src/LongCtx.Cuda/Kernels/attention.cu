// Flash attention with tensor cores (mma.sync m16n8k16, bf16 in, fp32 accumulate), the FlashAttention-2
// scheme: a block of 4 warps owns 64 query rows of one head, each warp 16 rows held in registers; K and V
// tiles of 64 keys are staged in shared memory (cp.async, double-buffered: the next visible tile loads while
// this one is computed) and read into mma fragments with ldmatrix; scores, the online softmax and the
// output accumulator stay in registers. The mask is the engine's one rule — a query sees a key of the same sequence at a
// position not after its own — judged per tile from (sequence, min, max position) summaries so hidden
// tiles are skipped and fully visible ones skip the per-element test. Writes output and the natural-log
// LSE (-inf, output 0 for a row that saw nothing). HEAD_DIM is fixed at compile time (a multiple of 16).
#include <cuda_bf16.h>
typedef __nv_bfloat16 bf16;
// NVRTC has no <math.h>: the infinity the kernels need, spelled out.
#define INFINITY __int_as_float(0x7f800000)

#define D HEAD_DIM
#define BQ 64
#define BK 64
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

__device__ __forceinline__ int next_visible(const TileInfo* k_tiles, const TileInfo& qt, int from, int count) {
    int t = from;
    while (t < count && tile_hidden(qt, k_tiles[t])) t++;
    return t;
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

// Stages key tile kt of KV head g into buffer slot: K and V rows by cp.async, sequence ids and positions by plain stores.
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

extern "C" __global__ void __launch_bounds__(128) flash_attention(
    const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
    const int* __restrict__ q_seq, const int* __restrict__ q_pos, const int* __restrict__ k_seq, const int* __restrict__ k_pos,
    const TileInfo* __restrict__ q_tiles, const TileInfo* __restrict__ k_tiles,
    bf16* __restrict__ out, float* __restrict__ lse,
    int tq, int tk, int heads, int kv_heads, float scale_log2)
{
    // Two buffers of K, V (and their ids/positions): [K0 | V0 | K1 | V1] in dynamic shared memory.
    extern __shared__ __align__(16) unsigned char smem[];
    bf16* tiles_kv = reinterpret_cast<bf16*>(smem);
    __shared__ int s_seq[2][BK], s_pos[2][BK];

    const int tile = blockIdx.x, h = blockIdx.y, g = h / (heads / kv_heads);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gr = lane >> 2, tc = lane & 3;
    const int row_a = tile * BQ + warp * 16 + gr, row_b = row_a + 8;
    const long q_stride = (long)heads * D, kv_stride = (long)kv_heads * D;
    const TileInfo qt = q_tiles[tile];
    const int key_tiles = (tk + BK - 1) / BK;

    int kt = next_visible(k_tiles, qt, 0, key_tiles);
    if (kt < key_tiles) load_tile(tiles_kv, tiles_kv + BK * LDS, s_seq[0], s_pos[0], k, v, k_seq, k_pos, kt, tk, g, kv_stride);
    cp_async_commit();

    // This thread's pieces of the warp's 16 query rows, as mma A fragments.
    unsigned qf[D / 16][4];
    #pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        int c = kk * 16 + tc * 2;
        qf[kk][0] = row_a < tq ? *reinterpret_cast<const unsigned*>(q + row_a * q_stride + h * D + c) : 0u;
        qf[kk][1] = row_b < tq ? *reinterpret_cast<const unsigned*>(q + row_b * q_stride + h * D + c) : 0u;
        qf[kk][2] = row_a < tq ? *reinterpret_cast<const unsigned*>(q + row_a * q_stride + h * D + c + 8) : 0u;
        qf[kk][3] = row_b < tq ? *reinterpret_cast<const unsigned*>(q + row_b * q_stride + h * D + c + 8) : 0u;
    }
    const int seq_a = row_a < tq ? q_seq[row_a] : -2, pos_a = row_a < tq ? q_pos[row_a] : -1;
    const int seq_b = row_b < tq ? q_seq[row_b] : -2, pos_b = row_b < tq ? q_pos[row_b] : -1;

    float o[D / 8][4];
    #pragma unroll
    for (int i = 0; i < D / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
    float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.f, l_b = 0.f;

    int buf = 0;
    while (kt < key_tiles) {
        const int next = next_visible(k_tiles, qt, kt + 1, key_tiles);
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
        const TileInfo ki = k_tiles[kt];
        const bool full = qt.seq >= 0 && ki.seq >= 0 && ki.max_pos <= qt.min_pos && (kt + 1) * BK <= tk;

        // S = Q Kᵀ for 16 rows x 64 keys: 8 accumulator tiles of 16x8; ldmatrix gives two key tiles' B at once.
        float s[BK / 8][4];
        #pragma unroll
        for (int n = 0; n < BK / 8; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
        #pragma unroll
        for (int n = 0; n < BK / 8; n += 2) {
            #pragma unroll
            for (int kk = 0; kk < D / 16; kk++) {
                unsigned b[4];
                const int m = lane >> 3;
                ldmatrix_x4(b, sk + (n * 8 + (m >> 1) * 8 + (lane & 7)) * LDS + kk * 16 + (m & 1) * 8);
                mma16816(s[n], qf[kk], b);
                mma16816(s[n + 1], qf[kk], b + 2);
            }
        }

        float mx_a = -INFINITY, mx_b = -INFINITY;
        #pragma unroll
        for (int n = 0; n < BK / 8; n++) {
            #pragma unroll
            for (int e = 0; e < 4; e++) {
                float val = s[n][e] * scale_log2;
                if (!full) {
                    int col = n * 8 + tc * 2 + (e & 1);
                    bool second = e >= 2;
                    if (ss[col] != (second ? seq_b : seq_a) || sp[col] > (second ? pos_b : pos_a)) val = -INFINITY;
                }
                s[n][e] = val;
            }
            mx_a = fmaxf(mx_a, fmaxf(s[n][0], s[n][1]));
            mx_b = fmaxf(mx_b, fmaxf(s[n][2], s[n][3]));
        }
        mx_a = quad_max(mx_a);
        mx_b = quad_max(mx_b);
        const float new_a = fmaxf(m_a, mx_a), new_b = fmaxf(m_b, mx_b);
        // A row that has seen nothing yet keeps base 0 so exp2(-inf - base) = 0 and nothing becomes NaN.
        const float base_a = new_a == -INFINITY ? 0.f : new_a, base_b = new_b == -INFINITY ? 0.f : new_b;
        const float alpha_a = exp2f(m_a - base_a), alpha_b = exp2f(m_b - base_b);
        float sum_a = 0.f, sum_b = 0.f;
        #pragma unroll
        for (int n = 0; n < BK / 8; n++) {
            s[n][0] = exp2f(s[n][0] - base_a); s[n][1] = exp2f(s[n][1] - base_a);
            s[n][2] = exp2f(s[n][2] - base_b); s[n][3] = exp2f(s[n][3] - base_b);
            sum_a += s[n][0] + s[n][1];
            sum_b += s[n][2] + s[n][3];
        }
        l_a = l_a * alpha_a + sum_a;
        l_b = l_b * alpha_b + sum_b;
        m_a = new_a;
        m_b = new_b;
        #pragma unroll
        for (int i = 0; i < D / 8; i++) { o[i][0] *= alpha_a; o[i][1] *= alpha_a; o[i][2] *= alpha_b; o[i][3] *= alpha_b; }

        // O += P V: the score accumulators of two adjacent key tiles are exactly an A fragment; V's B
        // fragments come transposed from ldmatrix, two head-dim tiles per call.
        #pragma unroll
        for (int j = 0; j < BK / 16; j++) {
            unsigned a[4] = { pack2(s[2 * j][0], s[2 * j][1]), pack2(s[2 * j][2], s[2 * j][3]),
                              pack2(s[2 * j + 1][0], s[2 * j + 1][1]), pack2(s[2 * j + 1][2], s[2 * j + 1][3]) };
            #pragma unroll
            for (int dn = 0; dn < D / 8; dn += 2) {
                unsigned b[4];
                const int m = lane >> 3;
                ldmatrix_x4_trans(b, sv + (j * 16 + (m & 1) * 8 + (lane & 7)) * LDS + dn * 8 + (m >> 1) * 8);
                mma16816(o[dn], a, b);
                mma16816(o[dn + 1], a, b + 2);
            }
        }
        __syncthreads(); // everyone is done with this buffer before it is refilled
        buf ^= 1;
        kt = next;
    }
    cp_async_wait<0>();
    l_a = quad_sum(l_a);
    l_b = quad_sum(l_b);
    const float inv_a = l_a > 0.f ? 1.f / l_a : 0.f, inv_b = l_b > 0.f ? 1.f / l_b : 0.f;
    #pragma unroll
    for (int dn = 0; dn < D / 8; dn++) {
        int c = dn * 8 + tc * 2;
        if (row_a < tq) *reinterpret_cast<unsigned*>(out + row_a * q_stride + h * D + c) = pack2(o[dn][0] * inv_a, o[dn][1] * inv_a);
        if (row_b < tq) *reinterpret_cast<unsigned*>(out + row_b * q_stride + h * D + c) = pack2(o[dn][2] * inv_b, o[dn][3] * inv_b);
    }
    if (tc == 0) {
        const float ln2 = 0.6931471805599453f;
        if (row_a < tq) lse[(long)row_a * heads + h] = l_a > 0.f ? (m_a + log2f(l_a)) * ln2 : -INFINITY;
        if (row_b < tq) lse[(long)row_b * heads + h] = l_b > 0.f ? (m_b + log2f(l_b)) * ln2 : -INFINITY;
    }
}
