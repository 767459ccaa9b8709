// y[t, n] = sum_k x[t, k] · w[n, k] (+ y[t, n] when accumulate) for 5 to 16 rows t (a decode step of a batch) on
// tensor cores. gemv.cu's CUDA-core kernels make each lane multiply every weight by every row of x: at 8 rows that
// is 8 loads of x per weight load, more than L1 gives (slower than cuBLAS). Here mma.sync m16n8k16 does those products.
//
// A block owns 16 outputs n (the MMA's rows) and its 8 warps split k: warp w takes the 32-wide k-steps w, w + 8,
// ..., UNROLL of them in flight. In a step, lane (gr = lane / 4, tc = lane % 4) loads 16 bytes (8 k) of weight rows
// gr and gr + 8 and of x's rows gr (and gr + 8 past 8 rows): the k order inside a step is permuted, the same for
// both operands, so the dot products are unchanged and every load is 16 bytes (4 lanes read 64 contiguous bytes of
// a row). Those 8 k of a lane are the A and B fragments of two MMAs: k 2tc, 2tc + 1, 2tc + 8, 2tc + 9 of the first
// are its elements 0-3, of the second its elements 4-7. The warps' partial sums meet in shared memory and each
// output is rounded to bf16 once (with accumulate: after adding the old y in fp32, as cuBLAS does with beta = 1).
//
// gemv3_mma runs up to three projections of the same x in one launch (q, k and v: the blocks walk w0's outputs,
// then w1's, then w2's), gemv_swiglu_mma the gate and up projections with SwiGLU on the way out, with the roundings
// of gemv.cu's gemv_swiglu. The layer's RMSNorm stays a kernel of its own: every block normalising the rows first,
// as gemv.cu's kernels do for up to 4, costs more than the launch it saves at these row counts. Launched as dependents
// (Kernels/pdl.cuh). ROWS (1..16) and ROPE (0 or 1) are fixed at compile
// time; k must be a multiple of 32 and x and w 16-byte aligned (the backend checks and uses cuBLAS
// otherwise).
#include "tensor_core.cuh"
#include "pdl.cuh"
#include "rope.cuh"

__device__ __forceinline__ float round_bf16(float v) { return __bfloat162float(__float2bfloat16(v)); }

constexpr int T = ROWS;
constexpr int TILES = (T + 7) / 8;    // n-tiles of 8 rows of x
constexpr int WARPS = 8;
constexpr int UNROLL = 4;             // 8 was no faster
constexpr int OUTS = 16;              // outputs per block: the MMA's rows
static_assert(T >= 1 && T <= 16, "ROWS: 1 to 16");

// This warp's share of the dot products of w's rows [a0, a0 + 8) and [b0, b0 + 8) (the MMA's rows gr and gr + 8;
// b0 = a0 + 8 but for a rotated projection) with x's T rows, in the MMA's C layout: acc[i] holds rows a0 + gr
// (elements 0, 1) and b0 + gr (2, 3) for x's rows 8i + 2tc and 8i + 2tc + 1.
__device__ __forceinline__ void tile_dots(const bf16* __restrict__ x, const bf16* __restrict__ w, int a0, int b0, int n_out, int k,
                                          int warp, int lane, float (&acc)[TILES][4]) {
    const int gr = lane >> 2, tc = lane & 3, steps = k / 32;
    const bool has_a = a0 + gr < n_out, has_b = b0 + gr < n_out;
    const uint4* wa = reinterpret_cast<const uint4*>(w + (long)(a0 + gr) * k + tc * 8);
    const uint4* wb = reinterpret_cast<const uint4*>(w + (long)(b0 + gr) * k + tc * 8);
    const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
    #pragma unroll
    for (int i = 0; i < TILES; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
    for (int s0 = warp; s0 < steps; s0 += WARPS * UNROLL) {
        // Every load of UNROLL steps in flight before the first MMA: the weights streamed (read once, not kept in
        // L1), x through the non-coherent cache (every block reads it).
        uint4 va[UNROLL], vb[UNROLL], xv[UNROLL][TILES];
        #pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const int s = s0 + u * WARPS;
            va[u] = s < steps && has_a ? __ldcs(wa + 4 * s) : zero;
            vb[u] = s < steps && has_b ? __ldcs(wb + 4 * s) : zero;
            #pragma unroll
            for (int i = 0; i < TILES; i++) {
                const int t = 8 * i + gr;
                xv[u][i] = s < steps && t < T ? __ldg(reinterpret_cast<const uint4*>(x + (long)t * k + tc * 8) + 4 * s) : zero;
            }
        }
        #pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            if (s0 + u * WARPS >= steps) break; // the same for the whole warp
            const unsigned a0[4] = { va[u].x, vb[u].x, va[u].y, vb[u].y }, a1[4] = { va[u].z, vb[u].z, va[u].w, vb[u].w };
            #pragma unroll
            for (int i = 0; i < TILES; i++) {
                const unsigned b0[2] = { xv[u][i].x, xv[u][i].y }, b1[2] = { xv[u][i].z, xv[u][i].w };
                mma16816(acc[i], a0, b0);
                mma16816(acc[i], a1, b1);
            }
        }
    }
}

// The 8 warps' acc summed per (output, row of x) into sums[o][t] (every thread of the block takes part; sums may be
// read after the call).
__device__ __forceinline__ void block_sums(const float (&acc)[TILES][4], int warp, int lane, float (&part)[WARPS][OUTS][16], float (&sums)[OUTS][16]) {
    const int gr = lane >> 2, tc = lane & 3;
    #pragma unroll
    for (int i = 0; i < TILES; i++) {
        part[warp][gr][8 * i + 2 * tc] = acc[i][0];
        part[warp][gr][8 * i + 2 * tc + 1] = acc[i][1];
        part[warp][gr + 8][8 * i + 2 * tc] = acc[i][2];
        part[warp][gr + 8][8 * i + 2 * tc + 1] = acc[i][3];
    }
    __syncthreads();
    const int o = threadIdx.x / 16, t = threadIdx.x % 16; // 256 threads: one (output, row) each
    float s = 0.f;
    #pragma unroll
    for (int w = 0; w < WARPS; w++) s += part[w][o][t];
    sums[o][t] = s;
    __syncthreads();
}

#ifndef ROPE
#define ROPE 0
#endif
// With ROPE, w0 and w1 are q and k and their outputs leave rotated (Kernels/rope.cuh at positions[t], inv_freq,
// rope_scale; heads of 2 · rope_half, rope_half a multiple of 8): a block of those takes outputs i0 .. i0 + 7 of one
// head as the MMA's rows gr and their partners i0 + rope_half .. as rows gr + 8, rounds both sums to bf16 and
// rotates them, as rope_vec8 does the stored values: the bits of gemv3_mma and then rope_vec8.
extern "C" __global__ void __launch_bounds__(WARPS * 32) gemv3_mma(const bf16* __restrict__ x, int k,
    const bf16* __restrict__ w0, bf16* __restrict__ y0, int n0, const bf16* __restrict__ w1, bf16* __restrict__ y1, int n1,
    const bf16* __restrict__ w2, bf16* __restrict__ y2, int n2, int accumulate,
    const int* __restrict__ positions, const float* __restrict__ inv_freq, int rope_half, float rope_scale)
{
    __shared__ float part[WARPS][OUTS][16], sums[OUTS][16];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int blocks0 = (n0 + OUTS - 1) / OUTS, blocks1 = (n1 + OUTS - 1) / OUTS;
    int b = blockIdx.x;
    const bf16* w = w0;
    bf16* y = y0;
    int n_out = n0;
    bool rotated = ROPE;
    if (b >= blocks0) {
        b -= blocks0; w = w1; y = y1; n_out = n1;
        if (b >= blocks1) { b -= blocks1; w = w2; y = y2; n_out = n2; rotated = false; }
    }
    // Rows gr: outputs a0 + gr; rows gr + 8: b0 + gr.
    const int groups = rope_half / 8, i0 = rotated ? b % groups * 8 : 0;
    const int a0 = rotated ? b / groups * 2 * rope_half + i0 : b * OUTS, b0 = rotated ? a0 + rope_half : a0 + 8;
    wait_for_previous_grid();
    let_next_grid_start();
    float acc[TILES][4];
    tile_dots(x, w, a0, b0, n_out, k, warp, lane, acc);
    block_sums(acc, warp, lane, part, sums);
    const int o = threadIdx.x / 16, t = threadIdx.x % 16;
    if (t >= T) return;
    if (rotated) {
        if (o >= 8) return;
        float c, sn, p = round_bf16(sums[o][t]), q = round_bf16(sums[o + 8][t]);
        rope_cos_sin(positions[t], inv_freq[i0 + o], rope_scale, &c, &sn);
        rope_rotate(&p, &q, c, sn);
        y[(long)t * n_out + a0 + o] = __float2bfloat16(p);
        y[(long)t * n_out + b0 + o] = __float2bfloat16(q);
        return;
    }
    const int n = o < 8 ? a0 + o : b0 + o - 8;
    if (n >= n_out) return;
    bf16* out = y + (long)t * n_out + n;
    *out = __float2bfloat16(accumulate ? sums[o][t] + __bfloat162float(*out) : sums[o][t]);
}

// y = silu(x·gateᵀ) · (x·upᵀ): both products rounded to bf16, silu(gate) rounded to bf16, the product once more
// (gemv.cu's gemv_swiglu).
extern "C" __global__ void __launch_bounds__(WARPS * 32) gemv_swiglu_mma(const bf16* __restrict__ x, const bf16* __restrict__ w_gate,
    const bf16* __restrict__ w_up, bf16* __restrict__ y, int n_out, int k)
{
    __shared__ float part[WARPS][OUTS][16], gate[OUTS][16], up[OUTS][16];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, n0 = blockIdx.x * OUTS;
    wait_for_previous_grid();
    let_next_grid_start();
    float acc[TILES][4];
    tile_dots(x, w_gate, n0, n0 + 8, n_out, k, warp, lane, acc);
    block_sums(acc, warp, lane, part, gate);
    tile_dots(x, w_up, n0, n0 + 8, n_out, k, warp, lane, acc);
    block_sums(acc, warp, lane, part, up);
    const int o = threadIdx.x / 16, t = threadIdx.x % 16, n = n0 + o;
    if (t >= T || n >= n_out) return;
    const float g = round_bf16(gate[o][t]);
    y[(long)t * n_out + n] = __float2bfloat16(round_bf16(g / (1.f + __expf(-g))) * round_bf16(up[o][t]));
}
