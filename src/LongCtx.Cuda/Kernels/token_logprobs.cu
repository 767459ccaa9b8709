// Per row of bf16 logits [rows, n] (CudaBackend.Logprobs): the log probability of the row's token and its `top`
// most likely tokens, as the host's Engine.Logprobs.Of gives them, so only these figures come back. One block a
// row, three reads of it:
// 1. the largest key, and the histogram of the keys' high bytes;
// 2. Σ exp(x − max), added up in double as the host adds its slices, and the histogram of the low bytes of the
//    keys in the high byte of the top-th largest: with it, the cut (that key) by radix selection;
// 3. the entries above the cut, and the earliest equal to it up to top (ties go to the lower id); one thread
//    sorts those few, best first.
#include "pdl.cuh"
#include "bf16_order_key.cuh"

constexpr int THREADS = 1024, WARPS = THREADS / 32;
constexpr int MAX_TOP = 20; // Engine.Logprobs.MaxTop

// The bf16 bits of a key (key 0: a NaN).
__device__ __forceinline__ unsigned short bits_of(unsigned key) {
    return (unsigned short)((key & 0x8000u) ? (key & 0x7fffu) : (~key & 0xffffu));
}

__device__ __forceinline__ float value_of(unsigned short b) { return __uint_as_float((unsigned)b << 16); }

// Counts digit in hist once per warp and digit (logits crowd into a few high bytes, and same-bin atomics of one
// warp serialise). Every lane of the warp calls it; digit 256 counts nothing.
__device__ __forceinline__ void count_digit(unsigned* hist, unsigned digit) {
    const unsigned peers = __match_any_sync(0xffffffffu, digit);
    if (digit < 256u && (threadIdx.x & 31) == __ffs(peers) - 1) atomicAdd(&hist[digit], __popc(peers));
}

// From the highest digit down, the bin where the remaining-th largest key falls; remaining becomes its rank there.
__device__ __forceinline__ void choose_digit(const unsigned* hist, int shift, unsigned& prefix, unsigned& remaining) {
    int digit = 255;
    for (; digit > 0 && hist[digit] < remaining; digit--) remaining -= hist[digit];
    prefix |= (unsigned)digit << shift;
}

// An entry packed so that descending order is by key, then by ascending id.
__device__ __forceinline__ unsigned long long entry_of(const unsigned short* x, int i) {
    return ((unsigned long long)key_of(x[i]) << 32) | (0xffffffffu - (unsigned)i);
}

extern "C" __global__ void __launch_bounds__(THREADS) token_logprobs(const unsigned short* __restrict__ logits, const int* __restrict__ tokens,
                                                                     float* __restrict__ out_logprob, int* __restrict__ out_top_ids,
                                                                     float* __restrict__ out_top_logprobs, int n, int top) {
    __shared__ unsigned hist[2][256];
    __shared__ unsigned warp_max[WARPS];
    __shared__ double warp_sum[WARPS];
    __shared__ unsigned s_prefix, s_remaining; // the cut's digits chosen so far; of count, the keys equal to the cut kept
    __shared__ int s_above;
    __shared__ int above[MAX_TOP], equal[WARPS][MAX_TOP], equal_kept[WARPS];
    __shared__ unsigned long long chosen[MAX_TOP];
    wait_for_previous_grid(); // launched as a dependent (Kernels/pdl.cuh)
    let_next_grid_start();
    const int row = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5, count = min(top, n);
    const unsigned short* x = logits + (long)row * n;
    for (int i = threadIdx.x; i < 2 * 256; i += THREADS) hist[i / 256][i % 256] = 0u;
    if (threadIdx.x == 0) s_above = 0;
    __syncthreads();

    // 1. The largest key; the high bytes' histogram.
    unsigned max_key = 0u;
    for (int base = 0; base < n; base += THREADS) {
        const int i = base + threadIdx.x;
        const unsigned key = i < n ? key_of(x[i]) : 0u;
        max_key = max(max_key, key);
        if (count > 0) count_digit(hist[0], i < n ? key >> 8 : 256u);
    }
    max_key = __reduce_max_sync(0xffffffffu, max_key);
    if (lane == 0) warp_max[warp] = max_key;
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned prefix = 0u, remaining = (unsigned)count;
        if (count > 0) choose_digit(hist[0], 8, prefix, remaining);
        s_prefix = prefix;
        s_remaining = remaining;
    }
    for (int w = 0; w < WARPS; w++) max_key = max(max_key, warp_max[w]);
    __syncthreads();

    // 2. Σ exp(x − max); the low bytes' histogram within the chosen high byte.
    const float max = value_of(bits_of(max_key));
    const unsigned high = s_prefix;
    double sum = 0.0;
    for (int base = 0; base < n; base += THREADS) {
        const int i = base + threadIdx.x;
        unsigned digit = 256u;
        if (i < n) {
            const unsigned short b = x[i];
            sum += (double)__expf(value_of(b) - max);
            const unsigned key = key_of(b);
            if ((key & 0xff00u) == high) digit = key & 255u;
        }
        if (count > 0) count_digit(hist[1], digit);
    }
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0) warp_sum[warp] = sum;
    __syncthreads();
    double lse = 0.0; // thread 0's, which writes every figure
    if (threadIdx.x == 0) {
        if (count > 0) {
            unsigned prefix = s_prefix, remaining = s_remaining;
            choose_digit(hist[1], 0, prefix, remaining);
            s_prefix = prefix;
            s_remaining = remaining;
        }
        sum = 0.0;
        for (int w = 0; w < WARPS; w++) sum += warp_sum[w];
        lse = (double)max + log(sum);
        out_logprob[row] = (float)((double)value_of(x[tokens[row]]) - lse);
    }
    if (count == 0) return;
    __syncthreads();

    // 3. A warp walks a contiguous segment, so its entries equal to the cut come in order; the warps' segments follow
    // one another, so the first `ties` of them in warp order are the row's earliest.
    const unsigned cut = s_prefix, ties = s_remaining;
    const int segment = (n + THREADS - 1) / THREADS * 32, begin = min(n, warp * segment), end = min(n, begin + segment);
    unsigned seen = 0u;
    for (int base = begin; base < end; base += 32) {
        const int i = base + lane;
        const unsigned key = i < end ? key_of(x[i]) : 0u;
        if (i < end && key > cut) above[atomicAdd(&s_above, 1)] = i;
        const unsigned equals = __ballot_sync(0xffffffffu, i < end && key == cut);
        const unsigned rank = seen + __popc(equals & ((1u << lane) - 1u));
        if ((equals >> lane & 1u) && rank < ties) equal[warp][rank] = i;
        seen += __popc(equals);
    }
    if (lane == 0) equal_kept[warp] = min(seen, ties);
    __syncthreads();

    if (threadIdx.x == 0) {
        int kept = 0;
        for (int a = 0; a < s_above; a++) chosen[kept++] = entry_of(x, above[a]);
        for (int w = 0; w < WARPS && kept < count; w++)
            for (int j = 0; j < equal_kept[w] && kept < count; j++) chosen[kept++] = entry_of(x, equal[w][j]);
        for (int j = 1; j < count; j++) {
            const unsigned long long e = chosen[j];
            int at = j;
            for (; at > 0 && chosen[at - 1] < e; at--) chosen[at] = chosen[at - 1];
            chosen[at] = e;
        }
        for (int j = 0; j < count; j++) {
            const int id = (int)(0xffffffffu - (unsigned)chosen[j]);
            out_top_ids[(long)row * top + j] = id;
            out_top_logprobs[(long)row * top + j] = (float)((double)value_of(x[id]) - lse);
        }
    }
}
