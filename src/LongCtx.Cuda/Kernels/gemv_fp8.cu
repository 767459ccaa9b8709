// The FP8 linear layer for a few rows (decode, and the rows cuBLASLt's FP8 GEMM leaves): y[t, n] =
// (Σ_k qa[t, k]·qw[n, k]) · sa[t] · sw[n] with qa, qw e4m3 codes (fp8_quant.cu made qa), or per group g of 128
// columns Σ_g (Σ_{k in g} qa·qw) · sa[g · lds + t] · sw[(n / 128) · ldw + g] (GROUPS = 1: 128 × 128 weight blocks,
// inputs per token and group). Products of e4m3 values are exact in fp32 and summed in fp32; the scales multiply
// each lane's 16-code partial sum (its codes lie in one group), the bias and, with accumulate, the old y are added in
// fp32 and y rounded to bf16 once. As gemv.cu: a warp streams one weight row, 16 codes a lane and UNROLL loads in
// flight, for all ROWS rows of x (read through the non-coherent cache); launched as a dependent (pdl.cuh).
//
// ROWS (1..16) and GROUPS (0 or 1) are fixed at compile time; k is a multiple of 16 (of 128 with GROUPS), the codes
// 16-byte aligned.
#include <cuda_bf16.h>
#include "pdl.cuh"
typedef __nv_bfloat16 bf16;

constexpr int T = ROWS;
constexpr int WARPS = 8;
constexpr int UNROLL = 4;
constexpr unsigned FULL = 0xffffffffu;

// Two codes of a 16-bit word (the low byte first) as floats, exactly.
__device__ __forceinline__ void e4m3x2_to_floats(unsigned short codes, float& lo, float& hi) {
    asm("{\n\t.reg .b32 p;\n\t.reg .b16 l, h;\n\t"
        "cvt.rn.f16x2.e4m3x2 p, %2;\n\tmov.b32 {l, h}, p;\n\t"
        "cvt.f32.f16 %0, l;\n\tcvt.f32.f16 %1, h;\n\t}"
        : "=f"(lo), "=f"(hi) : "h"(codes));
}

__device__ __forceinline__ void floats16(uint4 c, float (&f)[16]) {
    const unsigned w[4] = {c.x, c.y, c.z, c.w};
    #pragma unroll
    for (int i = 0; i < 4; i++) {
        e4m3x2_to_floats((unsigned short)(w[i] & 0xffffu), f[4 * i], f[4 * i + 1]);
        e4m3x2_to_floats((unsigned short)(w[i] >> 16), f[4 * i + 2], f[4 * i + 3]);
    }
}

extern "C" __global__ void __launch_bounds__(WARPS * 32) gemv_fp8(const unsigned char* __restrict__ x, const float* __restrict__ sa, int lds,
    const unsigned char* __restrict__ w, const float* __restrict__ sw, int ldw, const bf16* __restrict__ bias, bf16* __restrict__ y,
    int n, int k, int accumulate)
{
    wait_for_previous_grid();
    let_next_grid_start();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int out = blockIdx.x * WARPS + warp;
    if (out >= n) return;
    const int chunks = k / 16;
    const uint4* row = reinterpret_cast<const uint4*>(w + (long)out * k);
    const uint4* xs = reinterpret_cast<const uint4*>(x);
    float acc[T];
    #pragma unroll
    for (int t = 0; t < T; t++) acc[t] = 0.f;
    for (int c0 = lane; c0 < chunks; c0 += 32 * UNROLL) {
        uint4 wv[UNROLL];
        #pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const int c = c0 + u * 32;
            wv[u] = c < chunks ? __ldcs(row + c) : make_uint4(0u, 0u, 0u, 0u);
        }
        #pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            const int c = c0 + u * 32;
            if (c >= chunks) continue;
            float wf[16];
            floats16(wv[u], wf);
            #pragma unroll
            for (int t = 0; t < T; t++) {
                float xf[16];
                floats16(__ldg(xs + (long)t * chunks + c), xf);
                float part = 0.f;
                #pragma unroll
                for (int i = 0; i < 16; i++) part = fmaf(xf[i], wf[i], part);
#if GROUPS
                const int g = c / 8;
                acc[t] = fmaf(part * sa[(long)g * lds + t], sw[(long)(out / 128) * ldw + g], acc[t]);
#else
                acc[t] += part;
#endif
            }
        }
    }
    #pragma unroll
    for (int t = 0; t < T; t++) {
        #pragma unroll
        for (int o = 16; o > 0; o >>= 1) acc[t] += __shfl_xor_sync(FULL, acc[t], o);
    }
    if (lane != 0) return;
    const float b = bias == nullptr ? 0.f : __bfloat162float(bias[out]);
    #pragma unroll
    for (int t = 0; t < T; t++) {
#if GROUPS
        float v = acc[t] + b;
#else
        float v = acc[t] * sa[t] * sw[out] + b;
#endif
        if (accumulate) v += __bfloat162float(y[(long)t * n + out]);
        y[(long)t * n + out] = __float2bfloat16(v);
    }
}
