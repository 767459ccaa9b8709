// Attention for a few query rows (decode: one new token per sequence) against long KV caches. Reading the
// cache bounds it, so each block reads every K and V row of its key range exactly once, for all the query
// heads of the GQA group that share that KV head, with CUDA cores (a tensor-core tile would be 1 row of 128).
//
// decode_attention_partial: block (split, kv head · chunk, row) of 4 warps takes query row r, HEADS query
// heads of KV head g, and split s of the row's key range, 16 keys a tile. The tiles' K and V rows come into
// shared memory by cp.async, STAGES tiles ahead, so up to (STAGES − 1) · 16 keys of K and V are on the way
// per block without holding registers (a register prefetch of one tile left the HBM waiting on latency at
// ~2.5 TB/s). Lanes work in groups of 8 per key, a warp on 4 keys of a tile; each lane holds D/8 dims of the
// queries, of the K and V rows and of a float accumulator per head, and a group sums its partial dot products
// with 3 xor-shuffles. Online softmax per group and head in log2 units (queries pre-scaled by scale·log2 e,
// so exp2f); the 4 groups of a warp merge by shuffles, the 4 warps through shared memory, and the split
// writes its normalised output (float) and its log2-domain LSE. decode_attention_merge: one warp per
// (row, head) merges the splits by log-sum-exp into the bf16 output and the natural-log LSE (-inf and 0 for a
// row that sees nothing).
//
// HEAD_DIM (a multiple of 16 up to 256), GROUP (query heads per KV head) and HEADS (query heads per block:
// GROUP, or a share of it when the queries and accumulators of the whole group would not fit in registers;
// the last share may hold fewer than HEADS real heads) are fixed at compile time. The launch gives
// decode_attention_partial STAGES · 2 · 16 · HEAD_DIM bf16 of dynamic shared memory.
#include <cuda_bf16.h>
typedef __nv_bfloat16 bf16;
// NVRTC has no <math.h>: the infinity the kernels need, spelled out.
#define INFINITY __int_as_float(0x7f800000)

constexpr int D = HEAD_DIM;
constexpr int LANES_PER_KEY = 8;
constexpr int DPL = D / LANES_PER_KEY;                              // dims per lane, even since D % 16 == 0
constexpr int VEC = DPL % 8 == 0 ? 8 : DPL % 4 == 0 ? 4 : 2;        // bf16 per vector load
constexpr int PIECES = DPL / VEC;                                   // vector loads per lane and head row
constexpr int WARPS = 4;
constexpr int KEYS_PER_STEP = WARPS * (32 / LANES_PER_KEY);
constexpr int CHUNKS = (GROUP + HEADS - 1) / HEADS;                 // blocks sharing one KV head
constexpr int STAGES = 4;                                           // tiles in shared memory
constexpr int ROW_PIECES = D / 8;                                   // 16-byte pieces of a K or V row
constexpr int TILE_PIECES = 2 * KEYS_PER_STEP * ROW_PIECES;         // a tile's K rows, then its V rows
constexpr unsigned FULL = 0xffffffffu;

// Lane `sub` of a key's group holds the pieces sub, sub + 8, sub + 16, ... of VEC consecutive dims, so each
// vector load of the 8 lanes reads 8·VEC contiguous bf16 of the head row (for D = 128: two 128-byte lines,
// one per load instruction). Element e of the lane's arrays is dimension dim_of(e, sub).
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

__device__ __forceinline__ void cp_async16(void* shared, const void* global) {
    const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(shared));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(address), "l"(global));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int PENDING> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" :: "n"(PENDING)); }

// Queues the copy of keys [first, first + KEYS_PER_STEP) ∩ [.., end) of one KV head into a stage: K rows at
// stage[key · D], V rows at stage[(KEYS_PER_STEP + key) · D]. Rows past the end are left as they are (their
// keys are computed on but never counted).
__device__ __forceinline__ void load_tile(bf16* stage, const bf16* k_head, const bf16* v_head, long kv_stride, int first, int end) {
    for (int i = threadIdx.x; i < TILE_PIECES; i += WARPS * 32) {
        const int is_v = i / (KEYS_PER_STEP * ROW_PIECES), rest = i % (KEYS_PER_STEP * ROW_PIECES);
        const int key = rest / ROW_PIECES, piece = rest % ROW_PIECES;
        if (first + key < end)
            cp_async16(stage + (is_v * KEYS_PER_STEP + key) * D + piece * 8,
                       (is_v ? v_head : k_head) + (long)(first + key) * kv_stride + piece * 8);
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

extern "C" __global__ void __launch_bounds__(WARPS * 32) decode_attention_partial(
    const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
    const int* __restrict__ key_start, const int* __restrict__ key_count,
    float* __restrict__ part_out, float* __restrict__ part_lse,
    int rows, int heads, int kv_heads, float scale_log2)
{
    const int split = blockIdx.x, splits = gridDim.x, r = blockIdx.z;
    const int g = blockIdx.y / CHUNKS, first = (blockIdx.y % CHUNKS) * HEADS; // first: the block's first head within the group
    const int h0 = g * GROUP + first;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, slot = lane / LANES_PER_KEY, sub = lane % LANES_PER_KEY;

    // This split's share of the row's keys: the range cut into `splits` parts whose sizes differ by at most one.
    const int count = key_count[r], per = count / splits, extra = count % splits;
    const int begin = key_start[r] + split * per + min(split, extra);
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
    const bf16* k_head = k + (long)g * D;
    const bf16* v_head = v + (long)g * D;
    extern __shared__ __align__(16) unsigned char tile_bytes[];
    bf16* tiles = reinterpret_cast<bf16*>(tile_bytes);
    constexpr int STAGE = 2 * KEYS_PER_STEP * D;
    const int count_tiles = end > begin ? (end - begin + KEYS_PER_STEP - 1) / KEYS_PER_STEP : 0;
    #pragma unroll
    for (int t = 0; t < STAGES - 1; t++) {
        if (t < count_tiles) load_tile(tiles + t * STAGE, k_head, v_head, kv_stride, begin + t * KEYS_PER_STEP, end);
        cp_async_commit(); // one group per tile, empty past the last, so the waits below count alike
    }

    // A group's key within a tile; the same tile count for every warp, so every lane reaches the shuffles and
    // barriers, and a group past the end of the range computes on stale rows and skips the update.
    const int in_tile = warp * (32 / LANES_PER_KEY) + slot;
    for (int t = 0; t < count_tiles; t++) {
        cp_async_wait<STAGES - 2>(); // this thread's copies of tile t have landed
        __syncthreads();             // everyone's have, and everyone is done with tile t − 1, whose stage is refilled next
        if (t + STAGES - 1 < count_tiles)
            load_tile(tiles + ((t + STAGES - 1) % STAGES) * STAGE, k_head, v_head, kv_stride, begin + (t + STAGES - 1) * KEYS_PER_STEP, end);
        cp_async_commit();

        const bf16* stage = tiles + (t % STAGES) * STAGE;
        const bool has = begin + t * KEYS_PER_STEP + in_tile < end;
        unsigned kw[DPL / 2];
        load_pairs(kw, stage + in_tile * D, sub);
        float kf[DPL];
        unpack(kf, kw);
        float s[HEADS];
        #pragma unroll
        for (int j = 0; j < HEADS; j++) {
            float x = 0.f;
            #pragma unroll
            for (int e = 0; e < DPL; e++) x = fmaf(qf[j][e], kf[e], x);
            x += __shfl_xor_sync(FULL, x, 1);
            x += __shfl_xor_sync(FULL, x, 2);
            x += __shfl_xor_sync(FULL, x, 4);
            s[j] = x;
        }
        if (has) {
            unsigned vw[DPL / 2];
            load_pairs(vw, stage + (KEYS_PER_STEP + in_tile) * D, sub);
            float vf[DPL];
            unpack(vf, vw);
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

    // The warp's 4 groups saw different keys for the same dims: merge them pairwise (lanes 8 and 16 apart).
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
        part_out[(out_row + h0 + j) * D + dim] = top == -INFINITY ? 0.f : o / sum;
        if (dim == 0) part_lse[out_row + h0 + j] = top == -INFINITY ? -INFINITY : top + log2f(sum);
    }
}

__device__ __forceinline__ float warp_max(float v) {
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL, v, o));
    return v;
}

__device__ __forceinline__ float warp_sum(float v) {
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL, v, o);
    return v;
}

// One warp per (row, head), row_heads = rows · heads of them: the splits' partials [splits, rows, heads, D]
// and log2 LSEs [splits, rows, heads] into out [rows, heads, D] bf16 and the natural-log lse [rows, heads].
extern "C" __global__ void decode_attention_merge(const float* __restrict__ part_out, const float* __restrict__ part_lse,
                                                  bf16* __restrict__ out, float* __restrict__ lse, int splits, int row_heads)
{
    const int rh = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
    if (rh >= row_heads) return; // whole warps: blockDim.x is a multiple of 32
    bf16* o = out + (long)rh * D;

    float top = -INFINITY;
    for (int s = lane; s < splits; s += 32) top = fmaxf(top, part_lse[(long)s * row_heads + rh]);
    top = warp_max(top);
    if (top == -INFINITY) {
        for (int i = lane; i < D; i += 32) o[i] = __float2bfloat16(0.f);
        if (lane == 0) lse[rh] = -INFINITY;
        return;
    }
    float sum = 0.f;
    for (int s = lane; s < splits; s += 32) sum += exp2f(part_lse[(long)s * row_heads + rh] - top); // -inf - finite: weight 0
    const float total = top + log2f(warp_sum(sum));

    constexpr int PER_LANE = (D + 31) / 32;
    float acc[PER_LANE] = {};
    for (int s = 0; s < splits; s++) {
        const float ls = part_lse[(long)s * row_heads + rh];
        if (ls == -INFINITY) continue; // the same for the whole warp: an empty split adds nothing
        const float weight = exp2f(ls - total);
        const float* p = part_out + ((long)s * row_heads + rh) * D;
        #pragma unroll
        for (int c = 0; c < PER_LANE; c++)
            if (c * 32 + lane < D) acc[c] = fmaf(weight, p[c * 32 + lane], acc[c]);
    }
    #pragma unroll
    for (int c = 0; c < PER_LANE; c++)
        if (c * 32 + lane < D) o[c * 32 + lane] = __float2bfloat16(acc[c]);
    if (lane == 0) lse[rh] = total * 0.6931471805599453f;
}
