// Attention for a few query rows (decode: one new token per sequence) against long KV caches. Reading the
// cache bounds it, so each block reads every K and V row of its key range exactly once, for all the query
// heads of the GQA group that share that KV head, with CUDA cores. decode_mma.cu computes the same partials with
// tensor cores and is taken where it applies (head dims up to 128, groups up to 16); this kernel serves the other
// shapes (and all with LONGCTX_DECODE_MMA=0).
//
// decode_attention_partial: block (split, kv head · chunk, row) of 4 warps takes query row r, HEADS query
// heads of KV head g, and split s of the row's key range. Lanes work in groups of LANES per key (16, or 8 when
// D is not a multiple of 32), a warp on 32/LANES keys and the block on 4·32/LANES keys a step; each lane holds
// D/LANES dims of the queries, of the K and V rows and of a float accumulator per head, and a group sums its
// partial dot products with log2(LANES) xor-shuffles. 16 lanes halve the registers a lane needs (221 with 8
// lanes for 4 heads of 128: two blocks an SM), and with twice the warps resident the long dependency chains of
// a step are hidden. Online softmax per
// group and head in log2 units (queries pre-scaled by scale·log2 e, so exp2f); the groups of a warp merge by
// shuffles, the 4 warps through shared memory, and the split writes its normalised output (float) and its
// log2-domain LSE. The last split to finish merges them by log-sum-exp into the bf16 output and the natural-log
// LSE, one warp per head (decode_merge.cuh; -inf and 0 for a row that sees nothing).
//
// With KV_FP8 = 1 the cache holds e4m3 codes (the FP8 KV cache, CudaBackend.Fp8*.cs): each lane loads the same dims
// as a byte each and converts them exactly to floats; the key scale is folded into scale_log2 by the host and the
// value scale multiplies each split's output (out_scale; 1 for bf16, which changes no bit).
//
// HEAD_DIM (a multiple of 16 up to 256), LANES, GROUP (query heads per KV head) and HEADS (query heads per block:
// GROUP, or a share of it when the queries and accumulators of the whole group would not fit in registers;
// the last share may hold fewer than HEADS real heads) and KV_FP8 are fixed at compile time.
#include <cuda_bf16.h>
#include "pdl.cuh"
typedef __nv_bfloat16 bf16;
// NVRTC has no <math.h>: the infinity the kernels need, spelled out.
#define INFINITY __int_as_float(0x7f800000)

#ifndef KV_FP8
#define KV_FP8 0
#endif
#if KV_FP8
typedef unsigned char kv_t;
#else
typedef bf16 kv_t;
#endif

constexpr int D = HEAD_DIM;
constexpr int LANES_PER_KEY = LANES;
constexpr int DPL = D / LANES_PER_KEY;                              // dims per lane, even: D % (2·LANES) == 0
constexpr int VEC = DPL % 8 == 0 ? 8 : DPL % 4 == 0 ? 4 : 2;        // bf16 per vector load
constexpr int PIECES = DPL / VEC;                                   // vector loads per lane and head row
constexpr int WARPS = 4;
constexpr int KEYS_PER_STEP = WARPS * (32 / LANES_PER_KEY);
constexpr int CHUNKS = (GROUP + HEADS - 1) / HEADS;                 // blocks sharing one KV head
constexpr unsigned FULL = 0xffffffffu;
#include "decode_merge.cuh"
#include "decode_rows.cuh"

// Lane `sub` of a key's group holds the pieces sub, sub + LANES, sub + 2·LANES, ... of VEC consecutive dims, so
// each vector load of the group reads LANES·VEC contiguous bf16 of the head row (for D = 128 and 16 lanes: the
// whole 256-byte row in one load instruction). Element e of the lane's arrays is dimension dim_of(e, sub).
__device__ __forceinline__ int dim_of(int e, int sub) { return ((e / VEC) * LANES_PER_KEY + sub) * VEC + e % VEC; }

// The lane's DPL values of one head row (row points at its dimension 0), as DPL/2 packed bf16 pairs.
__device__ __forceinline__ void load_pairs(unsigned (&w)[DPL / 2], const bf16* row, int sub) {
    #pragma unroll
    for (int i = 0; i < PIECES; i++) {
        const bf16* p = row + (i * LANES_PER_KEY + sub) * VEC;
        if constexpr (VEC == 8) {
            const uint4 t = *reinterpret_cast<const uint4*>(p);
            w[4 * i] = t.x; w[4 * i + 1] = t.y; w[4 * i + 2] = t.z; w[4 * i + 3] = t.w;
        } else if constexpr (VEC == 4) {
            const uint2 t = *reinterpret_cast<const uint2*>(p);
            w[2 * i] = t.x; w[2 * i + 1] = t.y;
        } else {
            w[i] = *reinterpret_cast<const unsigned*>(p);
        }
    }
}

// A bf16 is the top half of a float: the element at the lower address is the low half of the pair.
__device__ __forceinline__ void unpack(float (&f)[DPL], const unsigned (&w)[DPL / 2]) {
    #pragma unroll
    for (int t = 0; t < DPL / 2; t++) {
        f[2 * t] = __uint_as_float(w[t] << 16);
        f[2 * t + 1] = __uint_as_float(w[t] & 0xffff0000u);
    }
}

#if KV_FP8
// The FP8 cache's twins of load_pairs and unpack: the same dims, a byte each; w[t] holds the codes of dims 2t and
// 2t + 1 in its low 16 bits (the lower address in the low byte).
__device__ __forceinline__ void load_kv(unsigned (&w)[DPL / 2], const kv_t* row, int sub) {
    #pragma unroll
    for (int i = 0; i < PIECES; i++) {
        const kv_t* p = row + (i * LANES_PER_KEY + sub) * VEC;
        if constexpr (VEC == 8) {
            const uint2 t = *reinterpret_cast<const uint2*>(p);
            w[4 * i] = t.x & 0xffffu; w[4 * i + 1] = t.x >> 16; w[4 * i + 2] = t.y & 0xffffu; w[4 * i + 3] = t.y >> 16;
        } else if constexpr (VEC == 4) {
            const unsigned t = *reinterpret_cast<const unsigned*>(p);
            w[2 * i] = t & 0xffffu; w[2 * i + 1] = t >> 16;
        } else {
            w[i] = *reinterpret_cast<const unsigned short*>(p);
        }
    }
}

__device__ __forceinline__ void unpack_kv(float (&f)[DPL], const unsigned (&w)[DPL / 2]) {
    #pragma unroll
    for (int t = 0; t < DPL / 2; t++)
        asm("{\n\t.reg .b32 p;\n\t.reg .b16 l, h;\n\t"
            "cvt.rn.f16x2.e4m3x2 p, %2;\n\tmov.b32 {l, h}, p;\n\t"
            "cvt.f32.f16 %0, l;\n\tcvt.f32.f16 %1, h;\n\t}"
            : "=f"(f[2 * t]), "=f"(f[2 * t + 1]) : "h"((unsigned short)w[t]));
}
#else
__device__ __forceinline__ void load_kv(unsigned (&w)[DPL / 2], const kv_t* row, int sub) { load_pairs(w, row, sub); }
__device__ __forceinline__ void unpack_kv(float (&f)[DPL], const unsigned (&w)[DPL / 2]) { unpack(f, w); }
#endif

extern "C" __global__ void __launch_bounds__(WARPS * 32) decode_attention_partial(
    const __grid_constant__ DecodeRows keys, const bf16* __restrict__ q,
    float* __restrict__ part_out, float* __restrict__ part_lse, bf16* __restrict__ out, float* __restrict__ lse,
    unsigned* __restrict__ arrivals, int rows, int heads, int kv_heads, float scale_log2, float out_scale)
{
    wait_for_previous_grid(); // launched as a dependent (Kernels/pdl.cuh)
    let_next_grid_start();
    const int split = blockIdx.x, splits = gridDim.x, r = blockIdx.z;
    const int g = blockIdx.y / CHUNKS, first = (blockIdx.y % CHUNKS) * HEADS; // first: the block's first head within the group
    const int h0 = g * GROUP + first;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, slot = lane / LANES_PER_KEY, sub = lane % LANES_PER_KEY;

    // This split's share of the row's keys: the range cut into `splits` parts whose sizes differ by at most one.
    const int count = keys.count[r], per = count / splits, extra = count % splits;
    const int begin = keys.start[r] + split * per + min(split, extra);
    const int end = begin + per + (split < extra ? 1 : 0);

    // The block's query heads, pre-scaled so that scores are in log2 units; heads past the group (in the last
    // share of a split group) stay zero and are never written.
    float qf[HEADS][DPL];
    #pragma unroll
    for (int j = 0; j < HEADS; j++) {
        if (first + j < GROUP) {
            unsigned w[DPL / 2];
            load_pairs(w, q + ((long)r * heads + h0 + j) * D, sub);
            unpack(qf[j], w);
            #pragma unroll
            for (int e = 0; e < DPL; e++) qf[j][e] *= scale_log2;
        } else {
            #pragma unroll
            for (int e = 0; e < DPL; e++) qf[j][e] = 0.f;
        }
    }

    float m[HEADS], l[HEADS], acc[HEADS][DPL];
    #pragma unroll
    for (int j = 0; j < HEADS; j++) {
        m[j] = -INFINITY;
        l[j] = 0.f;
        #pragma unroll
        for (int e = 0; e < DPL; e++) acc[j][e] = 0.f;
    }

    const long kv_stride = (long)kv_heads * D;
    const kv_t* k_head = reinterpret_cast<const kv_t*>(keys.k[r]) + (long)g * D;
    const kv_t* v_head = reinterpret_cast<const kv_t*>(keys.v[r]) + (long)g * D;
    // The group's next key is loaded a step ahead, so its loads are in flight while this step computes.
    unsigned k_next[DPL / 2], v_next[DPL / 2];
    {
        const int key = begin + warp * (32 / LANES_PER_KEY) + slot;
        if (key < end) {
            load_kv(k_next, k_head + key * kv_stride, sub);
            load_kv(v_next, v_head + key * kv_stride, sub);
        } else {
            #pragma unroll
            for (int t = 0; t < DPL / 2; t++) k_next[t] = v_next[t] = 0u;
        }
    }

    // `step` is the same for the whole warp, so every lane reaches the shuffles; a group past the end of the
    // range computes on stale pairs and skips the update.
    for (int step = begin + warp * (32 / LANES_PER_KEY); step < end; step += KEYS_PER_STEP) {
        const int key = step + slot;
        const bool has = key < end;
        unsigned kw[DPL / 2], vw[DPL / 2];
        #pragma unroll
        for (int t = 0; t < DPL / 2; t++) { kw[t] = k_next[t]; vw[t] = v_next[t]; }
        if (key + KEYS_PER_STEP < end) {
            load_kv(k_next, k_head + (key + KEYS_PER_STEP) * kv_stride, sub);
            load_kv(v_next, v_head + (key + KEYS_PER_STEP) * kv_stride, sub);
        }

        float kf[DPL];
        unpack_kv(kf, kw);
        float s[HEADS];
        #pragma unroll
        for (int j = 0; j < HEADS; j++) {
            float x = 0.f;
            #pragma unroll
            for (int e = 0; e < DPL; e++) x = fmaf(qf[j][e], kf[e], x);
            #pragma unroll
            for (int o = 1; o < LANES_PER_KEY; o <<= 1) x += __shfl_xor_sync(FULL, x, o);
            s[j] = x;
        }
        if (has) {
            float vf[DPL];
            unpack_kv(vf, vw);
            #pragma unroll
            for (int j = 0; j < HEADS; j++) {
                // Rescale only when the maximum grows (rarely after the first keys). The first key meets
                // m = -inf with a finite score: exp2f(-inf) = 0 clears the zero state, no NaN.
                if (s[j] > m[j]) {
                    const float a = exp2f(m[j] - s[j]);
                    l[j] *= a;
                    #pragma unroll
                    for (int e = 0; e < DPL; e++) acc[j][e] *= a;
                    m[j] = s[j];
                }
                const float p = exp2f(s[j] - m[j]);
                l[j] += p;
                #pragma unroll
                for (int e = 0; e < DPL; e++) acc[j][e] = fmaf(p, vf[e], acc[j][e]);
            }
        }
    }

    // The warp's groups saw different keys for the same dims: merge them pairwise (lanes LANES, 2·LANES, ... apart).
    // A group that saw nothing has m = -inf and weighs 0; exp2f(-inf - -inf) would be NaN, hence the tests.
    #pragma unroll
    for (int j = 0; j < HEADS; j++) {
        #pragma unroll
        for (int offset = LANES_PER_KEY; offset < 32; offset <<= 1) {
            const float m_other = __shfl_xor_sync(FULL, m[j], offset);
            const float l_other = __shfl_xor_sync(FULL, l[j], offset);
            const float top = fmaxf(m[j], m_other);
            const float a = m[j] == -INFINITY ? 0.f : exp2f(m[j] - top);
            const float b = m_other == -INFINITY ? 0.f : exp2f(m_other - top);
            l[j] = l[j] * a + l_other * b;
            #pragma unroll
            for (int e = 0; e < DPL; e++) acc[j][e] = acc[j][e] * a + __shfl_xor_sync(FULL, acc[j][e], offset) * b;
            m[j] = top;
        }
    }

    __shared__ float s_m[WARPS][HEADS], s_l[WARPS][HEADS];
    __shared__ float s_acc[WARPS][HEADS][D];
    if (slot == 0) {
        #pragma unroll
        for (int j = 0; j < HEADS; j++) {
            #pragma unroll
            for (int e = 0; e < DPL; e++) s_acc[warp][j][dim_of(e, sub)] = acc[j][e];
            if (sub == 0) { s_m[warp][j] = m[j]; s_l[warp][j] = l[j]; }
        }
    }
    __syncthreads();

    // The 4 warps merged per (head, dim); a split without keys writes LSE -inf and zeros.
    const long out_row = ((long)split * rows + r) * heads;
    for (int i = threadIdx.x; i < HEADS * D; i += WARPS * 32) {
        const int j = i / D, dim = i % D;
        if (first + j >= GROUP) continue;
        float top = -INFINITY;
        #pragma unroll
        for (int w = 0; w < WARPS; w++) top = fmaxf(top, s_m[w][j]);
        float sum = 0.f, o = 0.f;
        if (top != -INFINITY) {
            #pragma unroll
            for (int w = 0; w < WARPS; w++) {
                const float weight = s_m[w][j] == -INFINITY ? 0.f : exp2f(s_m[w][j] - top);
                sum += s_l[w][j] * weight;
                o += s_acc[w][j][dim] * weight;
            }
        }
        // sum ≥ 1 when top is finite: the warp holding the maximum counts its own key with weight 1.
        part_out[(out_row + h0 + j) * D + dim] = top == -INFINITY ? 0.f : o / sum * out_scale;
        if (dim == 0) part_lse[out_row + h0 + j] = top == -INFINITY ? -INFINITY : top + log2f(sum);
    }

    // The column's last block merges its heads over the splits (decode_merge.cuh), a warp a head.
    if (!last_split(arrivals + (long)r * gridDim.y + blockIdx.y, splits)) return;
    for (int j = warp; j < HEADS; j += WARPS)
        if (first + j < GROUP) merge_splits(part_out, part_lse, out, lse, splits, rows * heads, r * heads + h0 + j, lane);
}
