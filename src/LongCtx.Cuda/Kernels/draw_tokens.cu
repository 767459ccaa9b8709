// The next token of each row of bf16 logits [rows, n] for its draw (CudaBackend.DrawTokens): the same algorithm as
// the host's TokenPicker.Pick, so only one int a row comes back. One block a row:
// 1. the largest logit and its first index (greedy, or top-k 1, stops here: Sampler.ArgMax's token);
// 2. top-k: the cut, the k-th largest key, by radix selection on 16-bit keys (two passes of 8 bits, each a
//    256-bin histogram of the keys that share the digits chosen so far);
// 3. weights e^((x − max)/T) = 2^((x − max) · log2_scale) as integers (2^40 for the largest), so sums are exact in
//    any order; top-p: the cut where, from the highest key down, their weight first reaches ceil(top_p · total),
//    by the same radix selection over weights;
// 4. the token where u · (the kept weight) falls, the kept tokens end to end in vocabulary order: a thread a
//    contiguous chunk, a block-wide prefix sum of the chunks, and the chunk holding it scanned again.
// Histogram bins are added to once per warp and digit (__match_any_sync): logits crowd into a few high digits.
#include "pdl.cuh"
#include "bf16_order_key.cuh"

constexpr int THREADS = 1024;
constexpr int MAX_ROWS = 32;
constexpr float WEIGHT_OF_MAX = 1099511627776.f; // 2^40, TokenPicker.WeightOfMax

// CudaBackend's TokenDrawsArgument, passed by value: row r's uniform number, log2(e)/T, top-p and top-k (1: greedy).
struct TokenDraws {
    double u[MAX_ROWS];
    float log2_scale[MAX_ROWS];
    float top_p[MAX_ROWS];
    int top_k[MAX_ROWS];
    int rows;
};

__device__ __forceinline__ unsigned long long weight_of(unsigned short b, unsigned key, unsigned max_key, float max, float scale) {
    if (key == max_key) return (unsigned long long)WEIGHT_OF_MAX;
    const float x = __uint_as_float((unsigned)b << 16);
    return __float2ull_rz(exp2f((x - max) * scale) * WEIGHT_OF_MAX);
}

// Adds w to hist[digit] once per warp and digit; every lane of the warp calls it (digit 256: nothing to add).
// A weight is at most 2^40: its two 20-bit halves summed over 32 lanes fit in 32 bits.
__device__ __forceinline__ void add_to_bin(unsigned long long* hist, unsigned digit, unsigned long long w) {
    const unsigned peers = __match_any_sync(0xffffffffu, digit);
    const unsigned high = __reduce_add_sync(peers, (unsigned)(w >> 20)), low = __reduce_add_sync(peers, (unsigned)(w & 0xfffffu));
    const unsigned long long sum = ((unsigned long long)high << 20) + low;
    if ((threadIdx.x & 31) == __ffs(peers) - 1 && digit < 256u && sum != 0) atomicAdd(&hist[digit], sum);
}

// Inclusive prefix sum over the block; totals holds 32 entries.
__device__ __forceinline__ unsigned long long block_scan(unsigned long long v, unsigned long long* totals) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    #pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const unsigned long long u = __shfl_up_sync(0xffffffffu, v, o);
        if (lane >= o) v += u;
    }
    if (lane == 31) totals[warp] = v;
    __syncthreads();
    if (warp == 0) {
        unsigned long long t = totals[lane];
        #pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const unsigned long long u = __shfl_up_sync(0xffffffffu, t, o);
            if (lane >= o) t += u;
        }
        totals[lane] = t;
    }
    __syncthreads();
    return v + (warp > 0 ? totals[warp - 1] : 0ull);
}

struct Selection {
    unsigned long long hist[256];
    unsigned long long remaining; // of the target, what the digits below the chosen ones must still reach
    unsigned prefix;              // the cut's digits chosen so far
};

// The key where, from the highest key down, the weight of the keys at or above it first reaches the target.
// by_count: every key weighs 1 and the target is k; else the weights of the keys at or above floor count, and the
// target is ceil(top_p · their sum).
__device__ unsigned cut_of(const unsigned short* x, int n, bool by_count, int k, float top_p, unsigned floor,
                           unsigned max_key, float max, float scale, Selection& s) {
    __syncthreads(); // every thread has read the previous selection's cut
    if (threadIdx.x == 0) { s.prefix = 0u; s.remaining = (unsigned long long)k; }
    for (int shift = 8; shift >= 0; shift -= 8) {
        for (int i = threadIdx.x; i < 256; i += THREADS) s.hist[i] = 0ull;
        __syncthreads();
        const unsigned high = shift == 8 ? 0u : 0xff00u, prefix = s.prefix;
        for (int base = 0; base < n; base += THREADS) {
            const int i = base + threadIdx.x;
            unsigned digit = 256u;
            unsigned long long w = 0ull;
            if (i < n) {
                const unsigned short b = x[i];
                const unsigned key = key_of(b);
                if ((key & high) == prefix) {
                    w = by_count ? 1ull : key < floor ? 0ull : weight_of(b, key, max_key, max, scale);
                    if (w != 0) digit = (key >> shift) & 255u;
                }
            }
            add_to_bin(s.hist, digit, w);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            unsigned long long remaining = s.remaining;
            if (shift == 8 && !by_count) {
                unsigned long long total = 0ull;
                for (int d = 0; d < 256; d++) total += s.hist[d];
                remaining = (unsigned long long)ceil((double)top_p * (double)total);
            }
            int digit = 255;
            for (; digit > 0 && s.hist[digit] < remaining; digit--) remaining -= s.hist[digit];
            s.prefix = prefix | ((unsigned)digit << shift);
            s.remaining = remaining;
        }
        __syncthreads();
    }
    return s.prefix;
}

extern "C" __global__ void __launch_bounds__(THREADS) draw_tokens(const TokenDraws draws, const unsigned short* __restrict__ logits,
                                                                  int* __restrict__ tokens, int n) {
    __shared__ Selection s;
    __shared__ unsigned long long totals[32];
    __shared__ unsigned long long best[32];
    __shared__ int numbers[32];
    wait_for_previous_grid(); // launched as a dependent (Kernels/pdl.cuh)
    let_next_grid_start();
    const int row = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const unsigned short* x = logits + (long)row * n;

    // 1. The largest key, earliest first (packed so one maximum finds both), and how many entries are numbers.
    unsigned long long packed = 0ull;
    int count = 0;
    for (int i = threadIdx.x; i < n; i += THREADS) {
        const unsigned key = key_of(x[i]);
        count += key != 0u;
        const unsigned long long p = ((unsigned long long)key << 32) | (0xffffffffu - (unsigned)i);
        if (key != 0u && p > packed) packed = p;
    }
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const unsigned long long p = __shfl_xor_sync(0xffffffffu, packed, o);
        packed = p > packed ? p : packed;
        count += __shfl_xor_sync(0xffffffffu, count, o);
    }
    if (lane == 0) { best[warp] = packed; numbers[warp] = count; }
    __syncthreads();
    packed = 0ull;
    count = 0;
    for (int w = 0; w < 32; w++) { packed = best[w] > packed ? best[w] : packed; count += numbers[w]; }
    const unsigned max_key = (unsigned)(packed >> 32);
    const int first = (int)(0xffffffffu - (unsigned)packed);
    const int k = draws.top_k[row];
    if (max_key == 0u || k == 1) {
        if (threadIdx.x == 0) tokens[row] = max_key == 0u ? n - 1 : first; // NaN only: Sampler.ArgMax's answer
        return;
    }
    const float max = __uint_as_float((unsigned)x[first] << 16), scale = draws.log2_scale[row];

    // 2-3. The cut: top-k by count, then top-p by weight.
    unsigned cut = 1u;
    if (k > 0 && k < count) cut = cut_of(x, n, true, k, 1.f, 0u, max_key, max, scale, s);
    if (draws.top_p[row] < 1.f) cut = cut_of(x, n, false, 0, draws.top_p[row], cut, max_key, max, scale, s);

    // 4. The token where u · (kept weight) falls.
    const int chunk = (n + THREADS - 1) / THREADS, begin = min(n, threadIdx.x * chunk), end = min(n, begin + chunk);
    unsigned long long mine = 0ull;
    for (int i = begin; i < end; i++) {
        const unsigned key = key_of(x[i]);
        if (key >= cut) mine += weight_of(x[i], key, max_key, max, scale);
    }
    const unsigned long long through = block_scan(mine, totals), kept = totals[31];
    unsigned long long target = (unsigned long long)(draws.u[row] * (double)kept);
    if (target >= kept) target = kept - 1;
    if (mine != 0ull && target >= through - mine && target < through) {
        unsigned long long sum = through - mine;
        for (int i = begin; i < end; i++) {
            const unsigned key = key_of(x[i]);
            if (key >= cut && (sum += weight_of(x[i], key, max_key, max, scale)) > target) { tokens[row] = i; break; }
        }
    }
}
