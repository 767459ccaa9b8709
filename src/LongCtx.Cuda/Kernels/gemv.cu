// y[t, n] = sum_k x[t, k] · w[n, k] (+ y[t, n] when accumulate) for a few rows t (decode: one token per
// sequence). Reading the weights bounds it: each warp takes one output n and streams w's row n once for all
// ROWS rows of x, 16 bytes a lane and UNROLL loads in flight, so a block of 8 warps keeps 16 KB of weight rows
// on the way. Products and sums in fp32; with accumulate the old y is added in fp32 and the sum rounded to bf16
// once, as cuBLAS does with beta = 1. Faster than cuBLAS for these GEMMs (docs/PERFORMANCE.md has the figures).
//
// gemv3 runs up to three projections of the same x in one launch (q, k and v), gemv_swiglu the gate and up
// projections with SwiGLU on the way out; both give the bits of the separate launches they replace.
//
// Each kernel is launched as a dependent of the kernel before it (Kernels/pdl.cuh) and waits for it before it
// reads x. Nothing is fetched before that wait: a warp that starts after the previous kernel has ended would fetch
// its weight row twice (prefetching rows towards L2, or each lane's first chunks into registers, were slower).
//
// With NORM = 1, gemv3 and gemv_swiglu take the un-normalised x and the RMSNorm weight and normalise x themselves,
// every block into its shared memory, exactly as rms_norm_vec8 does (rms_norm.cuh, the same 256 threads): the norm's
// launch is saved (two a layer), and every block reads x (8 KB at hidden 4096) and the norm weight from L2.
//
// With ROPE = 1, gemv3 rotates q and k (its first two projections) on the way out, saving rope_vec8's launch.
//
// ROWS (1..4), NORM and ROPE (0 or 1) are fixed at compile time; k must be a multiple of 8 and x and w 16-byte aligned
// (the backend checks and uses cuBLAS otherwise).
#include <cuda_bf16.h>
#include "pdl.cuh"
typedef __nv_bfloat16 bf16;
#include "rms_norm.cuh"
#include "rope.cuh"

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

// The dot products of w's row n with the ROWS rows of x, summed over the warp (every lane ends with them). x is in
// global memory (read through the non-coherent cache), or in shared memory when the block normalised it.
template <bool SHARED_X>
__device__ __forceinline__ void row_dots(const bf16* __restrict__ x, const bf16* __restrict__ w, int n, int k, int lane, float (&acc)[T]) {
    const int chunks = k / 8;
    const uint4* row = reinterpret_cast<const uint4*>(w + (long)n * k);
    const uint4* xs = reinterpret_cast<const uint4*>(x);
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
                for (int t = 0; t < T; t++) acc[t] = dot8(wv[u], SHARED_X ? xs[(long)t * chunks + c] : __ldg(xs + (long)t * chunks + c), acc[t]);
            }
        }
    }
    #pragma unroll
    for (int t = 0; t < T; t++) {
        #pragma unroll
        for (int o = 16; o > 0; o >>= 1) acc[t] += __shfl_xor_sync(FULL, acc[t], o);
    }
}

// y[:, n] = the sums (+ the old y[:, n] when accumulate), each rounded to bf16 once.
__device__ __forceinline__ void store(bf16* y, int n_out, int n, const float (&s)[T], int accumulate) {
    #pragma unroll
    for (int t = 0; t < T; t++) {
        bf16* out = y + (long)t * n_out + n;
        *out = __float2bfloat16(accumulate ? s[t] + __bfloat162float(*out) : s[t]);
    }
}

extern "C" __global__ void __launch_bounds__(WARPS * 32) gemv(const bf16* __restrict__ x, const bf16* __restrict__ w,
                                                               bf16* __restrict__ y, int n_out, int k, int accumulate)
{
    const int lane = threadIdx.x & 31, n = blockIdx.x * WARPS + (threadIdx.x >> 5);
    wait_for_previous_grid();
    let_next_grid_start();
    if (n >= n_out) return; // whole warps
    float s[T];
    row_dots<false>(x, w, n, k, lane, s);
    if (lane == 0) store(y, n_out, n, s, accumulate);
}

#ifndef NORM
#define NORM 0
#endif

// With NORM: the block normalises x [T, k] into its dynamic shared memory (T·k bf16) with the norm weight, as
// rms_norm_vec8 does each row, and returns where it put it. Every thread of the block takes part.
__device__ __forceinline__ const bf16* normalised(const bf16* x, const bf16* norm_w, float eps, int k) {
    extern __shared__ uint4 normed[];
    __shared__ float partial[32];
    #pragma unroll
    for (int t = 0; t < T; t++) {
        if (t > 0) __syncthreads(); // every thread has read the row before's sum from `partial`
        rms_norm_row_vec8(reinterpret_cast<const uint4*>(x) + t * (k / 8), reinterpret_cast<const uint4*>(norm_w),
                          normed + t * (k / 8), k, eps, partial);
    }
    __syncthreads();
    return reinterpret_cast<const bf16*>(normed);
}

#ifndef ROPE
#define ROPE 0
#endif

// The warps walk the outputs of w0, then of w1, then of w2 (n2 = 0 for two projections). With NORM, x is
// normalised first (norm_w, eps; unused without). With ROPE, w0 and w1 are q and k and their outputs leave rotated
// (Kernels/rope.cuh at positions[t], inv_freq, rope_scale; heads of 2 · rope_half): a warp takes the pair (i,
// i + rope_half) of one head, so each of those units is two rows of w, and rounds both sums to bf16 before the
// rotation, as rope_vec8 reads them from memory: the bits are those of gemv3 and then rope_vec8.
extern "C" __global__ void __launch_bounds__(WARPS * 32) gemv3(const bf16* __restrict__ x, int k,
    const bf16* __restrict__ w0, bf16* __restrict__ y0, int n0, const bf16* __restrict__ w1, bf16* __restrict__ y1, int n1,
    const bf16* __restrict__ w2, bf16* __restrict__ y2, int n2, const bf16* __restrict__ norm_w, float eps,
    const int* __restrict__ positions, const float* __restrict__ inv_freq, int rope_half, float rope_scale)
{
    const int lane = threadIdx.x & 31;
    const int units0 = ROPE ? n0 / 2 : n0, units1 = ROPE ? n1 / 2 : n1;
    int n = blockIdx.x * WARPS + (threadIdx.x >> 5);
    const bf16* w = w0;
    bf16* y = y0;
    int n_out = n0, units = units0;
    bool rotated = ROPE;
    if (n >= units0) {
        n -= units0; w = w1; y = y1; n_out = n1; units = units1;
        if (n >= units1) { n -= units1; w = w2; y = y2; n_out = n2; units = n2; rotated = false; }
    }
    wait_for_previous_grid();
    let_next_grid_start();
    if (NORM) x = normalised(x, norm_w, eps, k);
    if (n >= units) return;
    if (!rotated) {
        float s[T];
        row_dots<NORM>(x, w, n, k, lane, s);
        if (lane == 0) store(y, n_out, n, s, 0);
        return;
    }
    const int i = n % rope_half, first = n / rope_half * 2 * rope_half + i;
    float a[T], b[T];
    row_dots<NORM>(x, w, first, k, lane, a);
    row_dots<NORM>(x, w, first + rope_half, k, lane, b);
    if (lane != 0) return;
    #pragma unroll
    for (int t = 0; t < T; t++) {
        float c, s, p = round_bf16(a[t]), q = round_bf16(b[t]);
        rope_cos_sin(positions[t], inv_freq[i], rope_scale, &c, &s);
        rope_rotate(&p, &q, c, s);
        y[(long)t * n_out + first] = __float2bfloat16(p);
        y[(long)t * n_out + first + rope_half] = __float2bfloat16(q);
    }
}

// y = silu(x·gateᵀ) · (x·upᵀ) with the roundings of two Linears and elementwise.cu's swiglu: both products
// rounded to bf16, silu(gate) rounded to bf16 (transformers' act_fn output), the product rounded once more. With
// NORM, x is normalised first.
extern "C" __global__ void __launch_bounds__(WARPS * 32) gemv_swiglu(const bf16* __restrict__ x, const bf16* __restrict__ w_gate,
    const bf16* __restrict__ w_up, bf16* __restrict__ y, int n_out, int k, const bf16* __restrict__ norm_w, float eps)
{
    const int lane = threadIdx.x & 31, n = blockIdx.x * WARPS + (threadIdx.x >> 5);
    wait_for_previous_grid();
    let_next_grid_start();
    if (NORM) x = normalised(x, norm_w, eps, k);
    if (n >= n_out) return;
    float g[T], u[T];
    row_dots<NORM>(x, w_gate, n, k, lane, g);
    row_dots<NORM>(x, w_up, n, k, lane, u);
    if (lane != 0) return;
    #pragma unroll
    for (int t = 0; t < T; t++) {
        const float gate = round_bf16(g[t]);
        y[(long)t * n_out + n] = __float2bfloat16(round_bf16(gate / (1.f + __expf(-gate))) * round_bf16(u[t]));
    }
}
