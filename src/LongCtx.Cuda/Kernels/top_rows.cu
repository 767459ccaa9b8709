// Per head, the rows of the `count` highest scores (CudaBackend.TopRowsPerHead: APB's KV compression, every layer),
// selected where the scores are, so a layer does not wait for the host. One block per head:
// 1. the cut, the count-th highest score: radix selection on 32-bit keys that order as the floats do, four passes
//    of 8 bits from the top, each a 256-bin histogram of the keys that share the digits chosen so far;
// 2. the rows in ascending order: every row above the cut, and the rows equal to it, earliest first, until count
//    (ties to the earlier rows, as the host's HostSelection.TopRows), placed by block-wide prefix sums.
// Scores are F32 or BF16 (the retaining heads' scores are activations), [n, heads]; rows are I32 [count, heads].
#include <cuda_bf16.h>
typedef __nv_bfloat16 bf16;

constexpr int THREADS = 1024;

__device__ __forceinline__ float score_at(const void* scores, int bf16_scores, long i) {
    return bf16_scores ? __bfloat162float(static_cast<const bf16*>(scores)[i]) : static_cast<const float*>(scores)[i];
}

// A key with the order of the floats: NaN ranks as -inf, and -0 as +0 (the host compares floats, so they tie).
// Judged on the bits: with fast math a float comparison would flush denormals to zero, which the host does not.
__device__ __forceinline__ unsigned order_key(float x) {
    unsigned b = __float_as_uint(x);
    if ((b & 0x7fffffffu) > 0x7f800000u) b = 0xff800000u; // NaN: -inf
    if ((b & 0x7fffffffu) == 0u) b = 0u;                  // -0: +0
    return (b & 0x80000000u) ? ~b : b | 0x80000000u;
}

// Inclusive prefix sum of v over the block's THREADS threads; warp_totals holds 32 ints.
__device__ __forceinline__ int block_scan(int v, int* warp_totals) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    #pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const int u = __shfl_up_sync(0xffffffffu, v, o);
        if (lane >= o) v += u;
    }
    if (lane == 31) warp_totals[warp] = v;
    __syncthreads();
    if (warp == 0) {
        int t = warp_totals[lane];
        #pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const int u = __shfl_up_sync(0xffffffffu, t, o);
            if (lane >= o) t += u;
        }
        warp_totals[lane] = t;
    }
    __syncthreads();
    return v + (warp > 0 ? warp_totals[warp - 1] : 0);
}

extern "C" __global__ void __launch_bounds__(THREADS) top_rows(const void* __restrict__ scores, int bf16_scores, int* __restrict__ rows,
                                                              int n, int heads, int count) {
    __shared__ unsigned hist[256];
    __shared__ unsigned s_prefix, s_remaining; // the cut's digits chosen so far; of count, how many are still to place
    __shared__ int warp_totals[32];
    __shared__ int s_above, s_equal;           // rows above the cut and equal to it before this chunk
    const int h = blockIdx.x;
    if (threadIdx.x == 0) { s_prefix = 0; s_remaining = count; s_above = 0; s_equal = 0; }

    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int i = threadIdx.x; i < 256; i += THREADS) hist[i] = 0;
        __syncthreads();
        const unsigned prefix = s_prefix, high = shift == 24 ? 0u : 0xffffffffu << (shift + 8);
        for (int i = threadIdx.x; i < n; i += THREADS) {
            const unsigned key = order_key(score_at(scores, bf16_scores, (long)i * heads + h));
            if ((key & high) == prefix) atomicAdd(&hist[(key >> shift) & 255], 1u);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            // From the highest digit down: the bucket where the count-th highest key falls.
            unsigned remaining = s_remaining;
            int digit = 255;
            for (; digit > 0 && hist[digit] < remaining; digit--) remaining -= hist[digit];
            s_prefix = prefix | ((unsigned)digit << shift);
            s_remaining = remaining;
        }
        __syncthreads();
    }
    const unsigned cut = s_prefix;
    const int ties = (int)s_remaining; // rows equal to the cut that are kept: the earliest

    for (int start = 0; start < n; start += THREADS) {
        const int i = start + threadIdx.x;
        const unsigned key = i < n ? order_key(score_at(scores, bf16_scores, (long)i * heads + h)) : 0u;
        const int above = i < n && key > cut, equal = i < n && key == cut;
        // Both counts in one scan: each is at most THREADS < 2^16 within a chunk.
        const int packed = above | (equal << 16);
        const int inclusive = block_scan(packed, warp_totals), before = inclusive - packed;
        const int above_before = s_above + (before & 0xffff), equal_before = s_equal + (before >> 16);
        if (above || (equal && equal_before < ties))
            rows[(long)(above_before + min(equal_before, ties)) * heads + h] = i;
        __syncthreads(); // every thread has read s_above and s_equal
        if (threadIdx.x == THREADS - 1) { s_above += inclusive & 0xffff; s_equal += inclusive >> 16; }
        __syncthreads();
    }
}
