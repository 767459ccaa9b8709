// y[t, n] = sum_k x[t, k] · w[n, k] (+ y[t, n] when accumulate) for a few rows t (decode: one token per
// sequence). Reading the weights bounds it: each warp takes one output n and streams w's row n once for all
// ROWS rows of x, 16 bytes a lane and UNROLL loads in flight, so a block of 8 warps keeps 16 KB of weight rows
// on the way. Products and sums in fp32; with accumulate the old y is added in fp32 and the sum rounded to bf16
// once, as cuBLAS does with beta = 1. An 8B decode step at 8K context: 8.13 ms with this kernel, 8.73 with
// cuBLAS for these GEMMs (docs/PERFORMANCE.md, sixth round).
//
// ROWS (1..4) is fixed at compile time; k must be a multiple of 8 and x and w 16-byte aligned (the backend
// checks and uses cuBLAS otherwise).
#include <cuda_bf16.h>
typedef __nv_bfloat16 bf16;

constexpr int T = ROWS;
constexpr int WARPS = 8;
constexpr int UNROLL = 4;
constexpr unsigned FULL = 0xffffffffu;

// A bf16 is the top half of a float: the element at the lower address is the low half of each 32-bit word.
__device__ __forceinline__ float dot8(uint4 a, uint4 b, float acc) {
    const unsigned aw[4] = {a.x, a.y, a.z, a.w}, bw[4] = {b.x, b.y, b.z, b.w};
    #pragma unroll
    for (int i = 0; i < 4; i++) {
        acc = fmaf(__uint_as_float(aw[i] << 16), __uint_as_float(bw[i] << 16), acc);
        acc = fmaf(__uint_as_float(aw[i] & 0xffff0000u), __uint_as_float(bw[i] & 0xffff0000u), acc);
    }
    return acc;
}

extern "C" __global__ void __launch_bounds__(WARPS * 32) gemv(const bf16* __restrict__ x, const bf16* __restrict__ w,
                                                               bf16* __restrict__ y, int n_out, int k, int accumulate)
{
    const int lane = threadIdx.x & 31, n = blockIdx.x * WARPS + (threadIdx.x >> 5);
    if (n >= n_out) return; // whole warps
    const int chunks = k / 8;
    const uint4* row = reinterpret_cast<const uint4*>(w + (long)n * k);
    const uint4* xs = reinterpret_cast<const uint4*>(x);
    float acc[T];
    #pragma unroll
    for (int t = 0; t < T; t++) acc[t] = 0.f;

    for (int c0 = lane; c0 < chunks; c0 += 32 * UNROLL) {
        // The weight loads first, all UNROLL of them in flight; streamed (read once, not kept in L1).
        uint4 wv[UNROLL];
        #pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const int c = c0 + u * 32;
            wv[u] = c < chunks ? __ldcs(row + c) : make_uint4(0u, 0u, 0u, 0u);
        }
        #pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const int c = c0 + u * 32;
            if (c < chunks) {
                #pragma unroll
                for (int t = 0; t < T; t++) acc[t] = dot8(wv[u], __ldg(xs + (long)t * chunks + c), acc[t]);
            }
        }
    }
    #pragma unroll
    for (int t = 0; t < T; t++) {
        float s = acc[t];
        #pragma unroll
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(FULL, s, o);
        if (lane == 0) {
            bf16* out = y + (long)t * n_out + n;
            *out = __float2bfloat16(accumulate ? s + __bfloat162float(*out) : s);
        }
    }
}
