// The FP8 linear layer for a few rows (decode): y[t, n] =
// (Σ_k qa[t, k]·qw[n, k]) · sa[t] · sw[n] with qa, qw e4m3 codes (fp8_quant.cu made qa), or per group g of 128
// columns Σ_g (Σ_{k in g} qa·qw) · sa[g · lds + t] · sw[(n / 128) · ldw + g] (GROUPS = 1: 128 × 128 weight blocks,
// inputs per token and group). Products of e4m3 values are exact in fp32 and summed in fp32; the scales multiply
// each lane's 16-code partial sum (its codes lie in one group), the bias and, with accumulate, the old y are added in
// fp32 and y rounded to bf16 once. As gemv.cu: a warp streams one weight row, 16 codes a lane and UNROLL loads in
// flight, for all ROWS rows of x (read through the non-coherent cache); launched as a dependent (pdl.cuh). gemv_fp8_each
// takes the projections of one input (q, k, v) in one launch, gemv_fp8_swiglu the gate and up projections with SwiGLU.
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

// The sums of w's row `out` with the ROWS rows of x, scaled (the lane's partial sums scaled per group with GROUPS, the
// warp's sum per row and output otherwise), summed over the warp: every lane ends with them.
__device__ __forceinline__ void row_dots(const unsigned char* __restrict__ x, const float* __restrict__ sa, int lds,
    const unsigned char* __restrict__ w, const float* __restrict__ sw, int ldw, int out, int k, int lane, float (&acc)[T])
{
    const int chunks = k / 16;
    const uint4* row = reinterpret_cast<const uint4*>(w + (long)out * k);
    const uint4* xs = reinterpret_cast<const uint4*>(x);
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
#if !GROUPS
        acc[t] = acc[t] * sa[t] * sw[out];
#endif
    }
}

// One projection: y[:, out] = the sums + bias (+ the old y with accumulate), rounded to bf16 once.
extern "C" __global__ void __launch_bounds__(WARPS * 32) gemv_fp8(const unsigned char* __restrict__ x, const float* __restrict__ sa, int lds,
    const unsigned char* __restrict__ w, const float* __restrict__ sw, int ldw, const bf16* __restrict__ bias, bf16* __restrict__ y,
    int n, int k, int accumulate)
{
    wait_for_previous_grid();
    let_next_grid_start();
    const int lane = threadIdx.x & 31, out = blockIdx.x * WARPS + (threadIdx.x >> 5);
    if (out >= n) return;
    float acc[T];
    row_dots(x, sa, lds, w, sw, ldw, out, k, lane, acc);
    if (lane != 0) return;
    const float b = bias == nullptr ? 0.f : __bfloat162float(bias[out]);
    #pragma unroll
    for (int t = 0; t < T; t++) {
        float v = acc[t] + b;
        if (accumulate) v += __bfloat162float(y[(long)t * n + out]);
        y[(long)t * n + out] = __float2bfloat16(v);
    }
}

// Up to three projections of the same x (q, k, v) in one launch: the warps walk the outputs of the first, then of the
// second, then of the third; the bits of three gemv_fp8 launches.
struct Projections {
    const unsigned char* w[3];
    const float* sw[3];
    const bf16* bias[3];
    bf16* y[3];
    int n[3];
    int count;
};

extern "C" __global__ void __launch_bounds__(WARPS * 32) gemv_fp8_each(const __grid_constant__ Projections p, const unsigned char* __restrict__ x,
    const float* __restrict__ sa, int lds, int ldw, int k)
{
    wait_for_previous_grid();
    let_next_grid_start();
    const int lane = threadIdx.x & 31;
    int out = blockIdx.x * WARPS + (threadIdx.x >> 5), j = 0;
    while (j < p.count && out >= p.n[j]) out -= p.n[j++];
    if (j == p.count) return;
    float acc[T];
    row_dots(x, sa, lds, p.w[j], p.sw[j], ldw, out, k, lane, acc);
    if (lane != 0) return;
    const float b = p.bias[j] == nullptr ? 0.f : __bfloat162float(p.bias[j][out]);
    #pragma unroll
    for (int t = 0; t < T; t++) p.y[j][(long)t * p.n[j] + out] = __float2bfloat16(acc[t] + b);
}

// y = silu(x·gateᵀ) · (x·upᵀ) with the roundings of two Linears and elementwise.cu's swiglu (gemv.cu's gemv_swiglu):
// both products rounded to bf16, silu(gate) rounded to bf16, the product rounded once more.
extern "C" __global__ void __launch_bounds__(WARPS * 32) gemv_fp8_swiglu(const unsigned char* __restrict__ x, const float* __restrict__ sa, int lds,
    const unsigned char* __restrict__ w_gate, const float* __restrict__ sw_gate, const unsigned char* __restrict__ w_up, const float* __restrict__ sw_up,
    int ldw, bf16* __restrict__ y, int n, int k)
{
    wait_for_previous_grid();
    let_next_grid_start();
    const int lane = threadIdx.x & 31, out = blockIdx.x * WARPS + (threadIdx.x >> 5);
    if (out >= n) return;
    float g[T], u[T];
    row_dots(x, sa, lds, w_gate, sw_gate, ldw, out, k, lane, g);
    row_dots(x, sa, lds, w_up, sw_up, ldw, out, k, lane, u);
    if (lane != 0) return;
    #pragma unroll
    for (int t = 0; t < T; t++) {
        const float gate = __bfloat162float(__float2bfloat16(g[t]));
        const float silu = __bfloat162float(__float2bfloat16(gate / (1.f + __expf(-gate))));
        y[(long)t * n + out] = __float2bfloat16(silu * __bfloat162float(__float2bfloat16(u[t])));
    }
}
