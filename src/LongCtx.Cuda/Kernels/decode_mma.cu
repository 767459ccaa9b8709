// Decode attention with tensor cores: the partials of decode.cu's decode_attention_partial (same arguments, same
// [splits, rows, heads, D] normalised outputs and log2-domain LSEs, merged by the last split: decode_merge.cuh), with the
// dot products on mma.sync m16n8k16 (bf16 in, fp32 accumulate) instead of CUDA cores, whose dependency chains
// hold the CUDA-core kernel below the rate the GPU reads K and V at.
//
// Block (split, kv head g, row r): 4 warps over split s of row r's key range, for the GROUP query heads of KV
// head g as the MMA's 16 rows (heads past the group are zero rows, never written). Each warp works alone on
// chunks of 16 keys (chunks warp, warp + 4, ...): it streams them through its own STAGES-deep ring of shared
// memory with cp.async, so STAGES - 1 chunks (8 KB each at D = 128) are in flight while it computes one, and
// only __syncwarp orders the ring. Per chunk: S = Q·Kᵀ (16 x 16: two n-tiles, D/16 k-steps, K fragments by
// ldmatrix), the online softmax per head in registers (log2 units: S is scaled by scale·log2 e in fp32), and
// O += P·V (P's accumulators are the A fragment, V's fragments by ldmatrix.trans; O is 16 x D in fp32). At the
// end the 4 warps merge through shared memory, as the CUDA-core kernel's warps do.
//
// HEAD_DIM (a multiple of 16 up to 128: O and Q's fragments take D/2 + D/4 registers a lane), GROUP (1 to 16) and
// STAGES (2 or more) are fixed at compile time.
#include "tensor_core.cuh"
#include "pdl.cuh"

constexpr int D = HEAD_DIM;
constexpr int WARPS = 4;
constexpr int KEYS = 16;                          // keys per chunk: the k-step of P·V, two n-tiles of S
constexpr int LDS = D + 8;                        // padded row: the 8 rows an ldmatrix reads fall in distinct banks
constexpr int CHUNK = KEYS * LDS;                 // bf16 of one K or V chunk in shared memory
constexpr int HALVES = GROUP > 8 ? 2 : 1;         // MMA rows gr and gr + 8 of a lane: with 8 heads or fewer the second are padding
static_assert(D % 16 == 0 && D <= 128, "HEAD_DIM: a multiple of 16 up to 128");
static_assert(GROUP >= 1 && GROUP <= 16, "GROUP: 1 to 16 query heads per KV head");
static_assert(STAGES >= 2, "STAGES: at least 2");
#include "decode_merge.cuh"
#include "decode_rows.cuh"


// The warp stages the K and V rows of keys [key0, key0 + KEYS) of its head: 16-byte pieces, lane-strided. Keys at
// or past `end` are zero-filled from a valid address (key 0): their scores are masked, and zero V rows keep P·V finite.
__device__ __forceinline__ void load_chunk(bf16* sk, bf16* sv, const bf16* k_head, const bf16* v_head,
                                           int key0, int end, long kv_stride, int lane) {
    constexpr int PIECES = D / 8;                 // per row; KEYS · PIECES = 2·D is a multiple of 32
    #pragma unroll
    for (int j = 0; j < KEYS * PIECES / 32; j++) {
        const int i = j * 32 + lane, row = i / PIECES, c = (i % PIECES) * 8;
        const bool in = key0 + row < end;
        const long offset = (in ? (long)(key0 + row) * kv_stride : 0) + c;
        cp_async16(sk + row * LDS + c, k_head + offset, in ? 16 : 0);
        cp_async16(sv + row * LDS + c, v_head + offset, in ? 16 : 0);
    }
}

extern "C" __global__ void __launch_bounds__(WARPS * 32) decode_attention_partial_mma(
    const __grid_constant__ DecodeRows keys, const bf16* __restrict__ q,
    float* __restrict__ part_out, float* __restrict__ part_lse, bf16* __restrict__ out, float* __restrict__ lse,
    unsigned* __restrict__ arrivals, int rows, int heads, int kv_heads, float scale_log2)
{
    // Each warp's ring of STAGES chunks, [K | V] per stage; after the loop the same memory merges the warps.
    extern __shared__ __align__(16) unsigned char smem[];
    __shared__ float s_m[WARPS][GROUP], s_l[WARPS][GROUP];
    wait_for_previous_grid(); // launched as a dependent (Kernels/pdl.cuh)
    let_next_grid_start();

    const int split = blockIdx.x, splits = gridDim.x, g = blockIdx.y, r = blockIdx.z, h0 = g * GROUP;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gr = lane >> 2, tc = lane & 3, mat = lane >> 3;

    // This split's share of the row's keys, cut exactly as decode.cu cuts it.
    const int count = keys.count[r], per = count / splits, extra = count % splits;
    const int begin = keys.start[r] + split * per + min(split, extra);
    const int end = begin + per + (split < extra ? 1 : 0);
    const int chunks = (end - begin + KEYS - 1) / KEYS;
    const int mine = (chunks - warp + WARPS - 1) / WARPS;    // chunks warp, warp + WARPS, ... (numerator ≥ 0)

    const long kv_stride = (long)kv_heads * D;
    const bf16* k_head = keys.k[r] + (long)g * D;
    const bf16* v_head = keys.v[r] + (long)g * D;
    bf16* ring = reinterpret_cast<bf16*>(smem) + warp * STAGES * 2 * CHUNK;

    // The first STAGES - 1 chunks start loading before the queries are read. Every slot commits a group, empty or
    // not, so that the wait below always counts STAGES - 2 younger groups.
    #pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < mine) load_chunk(ring + s * 2 * CHUNK, ring + s * 2 * CHUNK + CHUNK, k_head, v_head,
                                 begin + (s * WARPS + warp) * KEYS, end, kv_stride, lane);
        cp_async_commit();
    }

    // Q as A fragments: MMA row i is query head h0 + i; rows past the group are zero.
    unsigned qf[D / 16][4];
    const bf16* q_group = q + ((long)r * heads + h0) * D;
    #pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        const int c = kk * 16 + tc * 2;
        #pragma unroll
        for (int e = 0; e < 4; e++) {
            const int row = gr + (e & 1) * 8;
            qf[kk][e] = row < GROUP ? *reinterpret_cast<const unsigned*>(q_group + row * D + c + (e >> 1) * 8) : 0u;
        }
    }

    float o[D / 8][4];
    #pragma unroll
    for (int i = 0; i < D / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
    // Per MMA row of the lane (gr, gr + 8): the running maximum and the lane's part of the sum (quad-summed at the end).
    float m[2] = { -INFINITY, -INFINITY }, l[2] = { 0.f, 0.f };

    for (int t = 0; t < mine; t++) {
        cp_async_wait<STAGES - 2>();               // this lane's pieces of chunk t have landed
        __syncwarp();                              // ... and every lane's; stage (t - 1) % STAGES is read by all
        if (t + STAGES - 1 < mine) {
            bf16* dst = ring + (t + STAGES - 1) % STAGES * 2 * CHUNK;
            load_chunk(dst, dst + CHUNK, k_head, v_head, begin + ((t + STAGES - 1) * WARPS + warp) * KEYS, end, kv_stride, lane);
        }
        cp_async_commit();

        const bf16* sk = ring + t % STAGES * 2 * CHUNK;
        const bf16* sv = sk + CHUNK;
        const int key0 = begin + (t * WARPS + warp) * KEYS;

        // S = Q Kᵀ, 16 heads x 16 keys: one ldmatrix gives both key n-tiles' B fragments of a k-step.
        float s[2][4] = { { 0.f, 0.f, 0.f, 0.f }, { 0.f, 0.f, 0.f, 0.f } };
        #pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            unsigned b[4];
            ldmatrix_x4(b, sk + ((mat >> 1) * 8 + (lane & 7)) * LDS + kk * 16 + (mat & 1) * 8);
            mma16816(s[0], qf[kk], b);
            mma16816(s[1], qf[kk], b + 2);
        }

        // Online softmax per head row. Key key0 < end is in every chunk, so each row's maximum is finite from the
        // first chunk on, and exp2f(-inf) = 0 both clears the first chunk's zero state and drops masked keys.
        #pragma unroll
        for (int half = 0; half < HALVES; half++) {
            float mx = -INFINITY;
            #pragma unroll
            for (int n = 0; n < 2; n++) {
                #pragma unroll
                for (int e = 2 * half; e < 2 * half + 2; e++) {
                    const bool in = key0 + n * 8 + tc * 2 + (e & 1) < end;
                    s[n][e] = in ? s[n][e] * scale_log2 : -INFINITY;
                    mx = fmaxf(mx, s[n][e]);
                }
            }
            const float top = fmaxf(m[half], quad_max(mx));
            const float alpha = exp2f(m[half] - top);
            float sum = 0.f;
            #pragma unroll
            for (int n = 0; n < 2; n++) {
                s[n][2 * half] = exp2f(s[n][2 * half] - top);
                s[n][2 * half + 1] = exp2f(s[n][2 * half + 1] - top);
                sum += s[n][2 * half] + s[n][2 * half + 1];
            }
            l[half] = l[half] * alpha + sum;
            m[half] = top;
            #pragma unroll
            for (int i = 0; i < D / 8; i++) { o[i][2 * half] *= alpha; o[i][2 * half + 1] *= alpha; }
        }

        // O += P V: the two n-tiles of scores are exactly an A fragment over the chunk's 16 keys (rows gr + 8 of a
        // group of 8 or fewer are zero scores of zero queries, so zero here); two head-dim tiles of V per ldmatrix.
        const unsigned a[4] = { pack2(s[0][0], s[0][1]), pack2(s[0][2], s[0][3]), pack2(s[1][0], s[1][1]), pack2(s[1][2], s[1][3]) };
        #pragma unroll
        for (int dn = 0; dn < D / 8; dn += 2) {
            unsigned b[4];
            ldmatrix_x4_trans(b, sv + ((mat & 1) * 8 + (lane & 7)) * LDS + dn * 8 + (mat >> 1) * 8);
            mma16816(o[dn], a, b);
            mma16816(o[dn + 1], a, b + 2);
        }
    }
    cp_async_wait<0>();
    __syncthreads(); // every warp is done with its ring: the memory now holds the warps' accumulators

    // The warps saw different keys for the same heads: their unnormalised O [WARPS][GROUP][D], maxima and sums.
    float* s_o = reinterpret_cast<float*>(smem);
    #pragma unroll
    for (int half = 0; half < HALVES; half++) {
        const float sum = quad_sum(l[half]);
        const int row = gr + half * 8;
        if (row < GROUP) {
            float* dst = s_o + (warp * GROUP + row) * D + tc * 2;
            #pragma unroll
            for (int i = 0; i < D / 8; i++) *reinterpret_cast<float2*>(dst + i * 8) = make_float2(o[i][2 * half], o[i][2 * half + 1]);
            if (tc == 0) { s_m[warp][row] = m[half]; s_l[warp][row] = sum; }
        }
    }
    __syncthreads();

    // Merged per (head, dim) as in decode.cu: a warp that saw nothing has m = -inf and weighs 0; a split without
    // keys writes LSE -inf and zeros.
    const long out_row = ((long)split * rows + r) * heads + h0;
    for (int i = threadIdx.x; i < GROUP * D; i += WARPS * 32) {
        const int j = i / D, dim = i % D;
        float top = -INFINITY;
        #pragma unroll
        for (int w = 0; w < WARPS; w++) top = fmaxf(top, s_m[w][j]);
        float sum = 0.f, acc = 0.f;
        if (top != -INFINITY) {
            #pragma unroll
            for (int w = 0; w < WARPS; w++) {
                const float weight = s_m[w][j] == -INFINITY ? 0.f : exp2f(s_m[w][j] - top);
                sum += s_l[w][j] * weight;
                acc += s_o[(w * GROUP + j) * D + dim] * weight;
            }
        }
        // sum ≥ 1 when top is finite: the warp holding the maximum counts its own key with weight 1.
        part_out[(out_row + j) * D + dim] = top == -INFINITY ? 0.f : acc / sum;
        if (dim == 0) part_lse[out_row + j] = top == -INFINITY ? -INFINITY : top + log2f(sum);
    }

    // The column's last block merges the group's heads over the splits (decode_merge.cuh), a warp a head.
    if (!last_split(arrivals + (long)r * gridDim.y + g, splits)) return;
    for (int j = warp; j < GROUP; j += WARPS) merge_splits(part_out, part_lse, out, lse, splits, rows * heads, r * heads + h0 + j, lane);
}
