// FP8 e4m3 quantisation with the exact semantics of bench/reference/FP8.md (and the CPU backend's Fp8Quantizer): every
// scale and every scaled value one IEEE float32 operation (__fdiv_rn, __fmul_rn: the kernels are compiled with
// --use_fast_math, whose division is approximate), amax the exact maximum of |x|, and the scaled value clamped to
// ±448 and rounded to the nearest e4m3, ties to even (cvt.rn.satfinite). Given the same bf16 inputs the codes and
// scales are the CPU's bit for bit.
//
// Schemes (the `scheme` argument): 0 per token, scale = max(f32(amax / 448), f32(1 / (448·512))), code = e4m3(x / s);
// 1 per token bounded (fbgemm_fp8): m = min(max(amax, 1e-12), ub), inv = f32(448 / m), code = e4m3(f32(x · inv)),
// scale = f32(1 / inv); 2 static: s = the checkpoint's input scale, code = e4m3(x / s). Per group of 128 columns
// (fp8 with weight_block_size): scale = f32(max(amax, 1e-10) / 448), written group-major, scales[g · lds + row] (the
// layout cuBLASLt's VEC128_32F scales of B take).
#include <cuda_bf16.h>
#include "pdl.cuh"
typedef __nv_bfloat16 bf16;
#include "rms_norm.cuh"

constexpr float E4M3_MAX = 448.f;
constexpr unsigned FULL = 0xffffffffu;

__device__ __forceinline__ float min_token_scale() { return __int_as_float(0x36924925); } // f32(1 / (448 · 512))
__device__ __forceinline__ float bounded_floor() { return __int_as_float(0x2b8cbccc); }   // f32(1e-12)
__device__ __forceinline__ float group_floor() { return __int_as_float(0x2edbe6ff); }     // f32(1e-10)

// Two e4m3 codes of a and b in one 16-bit word, a in the low byte.
__device__ __forceinline__ unsigned e4m3x2(float a, float b) {
    unsigned short r;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(b), "f"(a));
    return r;
}

// The two codes of a 16-bit word (the low byte first) as floats: exact (e4m3 values are half values).
__device__ __forceinline__ void e4m3x2_to_floats(unsigned short codes, float& lo, float& hi) {
    asm("{\n\t.reg .b32 p;\n\t.reg .b16 l, h;\n\t"
        "cvt.rn.f16x2.e4m3x2 p, %2;\n\tmov.b32 {l, h}, p;\n\t"
        "cvt.f32.f16 %0, l;\n\tcvt.f32.f16 %1, h;\n\t}"
        : "=f"(lo), "=f"(hi) : "h"(codes));
}

__device__ __forceinline__ float warp_max(float v) {
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL, v, o));
    return v;
}

// The scale of a dynamic per-token scheme from the row's amax, and the factor the values are divided (or, bounded,
// multiplied) by.
struct TokenScale {
    float scale, factor;
    bool multiply;
};

__device__ __forceinline__ TokenScale token_scale(float amax, int scheme, float parameter) {
    if (scheme == 1) {
        const float m = fminf(fmaxf(amax, bounded_floor()), parameter);
        const float inv = __fdiv_rn(E4M3_MAX, m);
        return {__fdiv_rn(1.f, inv), inv, true};
    }
    const float s = scheme == 2 ? parameter : fmaxf(__fdiv_rn(amax, E4M3_MAX), min_token_scale());
    return {s, s, false};
}

__device__ __forceinline__ float scaled(float x, const TokenScale& s) { return s.multiply ? __fmul_rn(x, s.factor) : __fdiv_rn(x, s.factor); }

// Eight codes of eight values, in memory order.
__device__ __forceinline__ uint2 codes8(const float* v, const TokenScale& s) {
    uint2 c;
    c.x = e4m3x2(scaled(v[0], s), scaled(v[1], s)) | (e4m3x2(scaled(v[2], s), scaled(v[3], s)) << 16);
    c.y = e4m3x2(scaled(v[4], s), scaled(v[5], s)) | (e4m3x2(scaled(v[6], s), scaled(v[7], s)) << 16);
    return c;
}

// Per token (schemes 0-2): a warp a row of k (a multiple of 8) bf16, rows ldx apart; codes [rows, k], scales [rows].
extern "C" __global__ void quantize_rows(const bf16* __restrict__ x, int ldx, unsigned char* __restrict__ codes, float* __restrict__ scales,
    int rows, int k, int scheme, float parameter)
{
    wait_for_previous_grid();
    let_next_grid_start();
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= rows) return;
    const uint4* xr = reinterpret_cast<const uint4*>(x + (long)row * ldx);
    const int chunks = k / 8;
    float amax = 0.f;
    for (int c = lane; c < chunks; c += 32) {
        float v[8];
        unpack8(xr[c], v);
        #pragma unroll
        for (int j = 0; j < 8; j++) amax = fmaxf(amax, fabsf(v[j]));
    }
    const TokenScale s = token_scale(warp_max(amax), scheme, parameter);
    uint2* out = reinterpret_cast<uint2*>(codes + (long)row * k);
    for (int c = lane; c < chunks; c += 32) {
        float v[8];
        unpack8(xr[c], v);
        out[c] = codes8(v, s);
    }
    if (lane == 0) scales[row] = s.scale;
}

// Per token and group of 128 columns: a warp a (row, group), 4 values a lane; scales[g · lds + row].
extern "C" __global__ void quantize_groups(const bf16* __restrict__ x, int ldx, unsigned char* __restrict__ codes, float* __restrict__ scales, int lds,
    int rows, int k)
{
    wait_for_previous_grid();
    let_next_grid_start();
    const int groups = k / 128;
    const long item = (long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (item >= (long)rows * groups) return;
    const int row = (int)(item / groups), g = (int)(item % groups);
    const uint2 raw = reinterpret_cast<const uint2*>(x + (long)row * ldx + g * 128)[lane];
    float v[4];
    unpack2(raw.x, v);
    unpack2(raw.y, v + 2);
    float amax = fmaxf(fmaxf(fabsf(v[0]), fabsf(v[1])), fmaxf(fabsf(v[2]), fabsf(v[3])));
    const float s = __fdiv_rn(fmaxf(warp_max(amax), group_floor()), E4M3_MAX);
    reinterpret_cast<unsigned*>(codes + (long)row * k + g * 128)[lane] =
        e4m3x2(__fdiv_rn(v[0], s), __fdiv_rn(v[1], s)) | (e4m3x2(__fdiv_rn(v[2], s), __fdiv_rn(v[3], s)) << 16);
    if (lane == 0) scales[(long)g * lds + row] = s;
}

// block_sum's twin for the maximum.
__device__ __forceinline__ float block_max(float v, float* partial) {
    v = warp_max(v);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        v = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.f;
        v = warp_max(v);
        if (threadIdx.x == 0) partial[0] = v;
    }
    __syncthreads();
    return partial[0];
}

// RMSNorm and the quantisation of its bf16 output in one pass (a block of 256 threads a row, as rms_norm_vec8): the
// values are those rms_norm_vec8 would store (rms_norm_row_vec8's arithmetic, the same block size), kept in shared
// memory as bf16 and quantised per token (scheme 0-2, scales[row]) or, with groups = 1, per group of 128 (scales
// [g · lds + row]); the codes are those of rms_norm_vec8 then quantize_rows / quantize_groups. hidden is a multiple
// of 128 when grouped, else of 8; dynamic shared memory: hidden · 2 bytes.
extern "C" __global__ void __launch_bounds__(256) rms_norm_quant(const bf16* __restrict__ x, const bf16* __restrict__ w, unsigned char* __restrict__ codes,
    float* __restrict__ scales, int lds, int hidden, float eps, int grouped, int scheme, float parameter)
{
    wait_for_previous_grid();
    let_next_grid_start();
    __shared__ float partial[32];
    extern __shared__ uint4 normed[];
    const long row = blockIdx.x;
    const uint4* xr = reinterpret_cast<const uint4*>(x + row * hidden);
    const uint4* wr = reinterpret_cast<const uint4*>(w);
    const int chunks = hidden / 8;
    float ss = 0.f;
    for (int i = threadIdx.x; i < chunks; i += blockDim.x) {
        float v[8];
        unpack8(xr[i], v);
        #pragma unroll
        for (int j = 0; j < 8; j++) ss += v[j] * v[j];
    }
    const float inv = rsqrtf(block_sum(ss, partial) / hidden + eps);
    // Every thread runs the same number of passes (grouped: chunks is a multiple of 16, so the 16 lanes of a group are
    // all in or all out of a pass, and the whole warp reaches the shuffles).
    float amax = 0.f;
    for (int base = 0; base < chunks; base += blockDim.x) {
        const int i = base + threadIdx.x;
        const bool has = i < chunks;
        float v[8], g[8];
        if (has) {
            unpack8(xr[i], v);
            unpack8(wr[i], g);
            #pragma unroll
            for (int j = 0; j < 8; j++) v[j] = rms_scale(v[j], inv, g[j]);
            normed[i] = pack8(v);
            unpack8(normed[i], v); // the bf16 values rms_norm_vec8 stores
        }
        float m = 0.f;
        if (has) {
            #pragma unroll
            for (int j = 0; j < 8; j++) m = fmaxf(m, fabsf(v[j]));
        }
        if (grouped) {
            // Chunks 16g .. 16g + 15 (the group's 128 values) are 16 consecutive lanes of one pass: the max over them.
            #pragma unroll
            for (int o = 1; o < 16; o <<= 1) m = fmaxf(m, __shfl_xor_sync(FULL, m, o));
            if (has) {
                const float s = __fdiv_rn(fmaxf(m, group_floor()), E4M3_MAX);
                const TokenScale gs = {s, s, false};
                reinterpret_cast<uint2*>(codes + row * hidden)[i] = codes8(v, gs);
                if ((threadIdx.x & 15) == 0) scales[(long)(i / 16) * lds + row] = s;
            }
        }
        amax = fmaxf(amax, m);
    }
    if (grouped) return;
    __syncthreads(); // every thread has read block_sum's partial[0] before block_max writes it (rms_norm.cuh)
    const TokenScale s = token_scale(block_max(amax, partial), scheme, parameter);
    for (int i = threadIdx.x; i < chunks; i += blockDim.x) {
        float v[8];
        unpack8(normed[i], v);
        reinterpret_cast<uint2*>(codes + row * hidden)[i] = codes8(v, s);
    }
    if (threadIdx.x == 0) scales[row] = s.scale;
}

// The FP8 KV cache's stores: up to 32 (source, destination, count, scale), codes = e4m3(f32(x / scale)) (a decode
// step's new K and V rows of every sequence, or a prefill's). Thread i of the launch takes 8 elements.
#define MAX_STORES 32
struct StoreList {
    const bf16* from[MAX_STORES];
    unsigned char* to[MAX_STORES];
    float scale[MAX_STORES];
    int end[MAX_STORES]; // running total of 8-element chunks
    int count;
};

extern "C" __global__ void quantize_store_list(const __grid_constant__ StoreList list) {
    wait_for_previous_grid();
    let_next_grid_start();
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    int c = 0;
    while (c < list.count && i >= list.end[c]) c++;
    if (c == list.count) return;
    const int j = i - (c == 0 ? 0 : list.end[c - 1]);
    float v[8];
    unpack8(reinterpret_cast<const uint4*>(list.from[c])[j], v);
    const TokenScale s = {list.scale[c], list.scale[c], false};
    reinterpret_cast<uint2*>(list.to[c])[j] = codes8(v, s);
}

// Eight e4m3 codes as bf16 values times s (exact for s = 1: e4m3 values are bf16 values).
__device__ __forceinline__ uint4 codes8_to_bf16(uint2 c, float s) {
    const unsigned words[2] = {c.x, c.y};
    unsigned packed[4];
    #pragma unroll
    for (int h = 0; h < 4; h++) {
        float lo, hi;
        e4m3x2_to_floats((unsigned short)(words[h / 2] >> (16 * (h % 2))), lo, hi);
        packed[h] = pack2(lo * s, hi * s);
    }
    return make_uint4(packed[0], packed[1], packed[2], packed[3]);
}

// out[i] = the value of code[i] as bf16, n a multiple of 8. The FP8 KV cache read by the bf16 prefill attention paths,
// its scales folded into the softmax scale and the output.
extern "C" __global__ void codes_to_bf16(const uint2* __restrict__ codes, uint4* __restrict__ out, long n8) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n8; i += (long)gridDim.x * blockDim.x) out[i] = codes8_to_bf16(codes[i], 1.f);
}

// x[i] = bf16(x[i] · s), n a multiple of 8: the FP8 KV cache's value scale applied to an attention output.
extern "C" __global__ void scale_bf16(uint4* __restrict__ x, long n8, float s) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n8; i += (long)gridDim.x * blockDim.x) {
        float v[8];
        unpack8(x[i], v);
        #pragma unroll
        for (int j = 0; j < 8; j++) v[j] *= s;
        x[i] = pack8(v);
    }
}

// FP8 attention (cuDNN's FP8 SDPA, --attention-dtype fp8) quantises Q, and K and V when the cache is not FP8, per tensor:
// amax_bf16 takes the maximum of |x| into amax (zeroed first; non-negative floats order as their bits), tensor_scale
// turns it into the scale max(f32(amax / 448), f32(1 / (448·512))) and its inverse, and quantize_tensor writes the codes.
extern "C" __global__ void amax_bf16(const uint4* __restrict__ x, long n8, unsigned* __restrict__ amax) {
    float m = 0.f;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n8; i += (long)gridDim.x * blockDim.x) {
        float v[8];
        unpack8(x[i], v);
        #pragma unroll
        for (int j = 0; j < 8; j++) m = fmaxf(m, fabsf(v[j]));
    }
    m = warp_max(m);
    if ((threadIdx.x & 31) == 0) atomicMax(amax, __float_as_uint(m));
}

extern "C" __global__ void tensor_scale(const unsigned* __restrict__ amax, float* __restrict__ scale, float* __restrict__ inverse) {
    const float s = fmaxf(__fdiv_rn(__uint_as_float(*amax), E4M3_MAX), min_token_scale());
    *scale = s;
    if (inverse != nullptr) *inverse = __fdiv_rn(1.f, s);
}

extern "C" __global__ void quantize_tensor(const uint4* __restrict__ x, uint2* __restrict__ codes, long n8, const float* __restrict__ scale) {
    const TokenScale s = {*scale, *scale, false};
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n8; i += (long)gridDim.x * blockDim.x) {
        float v[8];
        unpack8(x[i], v);
        codes[i] = codes8(v, s);
    }
}

// out[i] = bf16(value of code[i] · *scale): cuDNN's FP8 attention output back to bf16.
extern "C" __global__ void codes_to_bf16_scaled(const uint2* __restrict__ codes, uint4* __restrict__ out, long n8, const float* __restrict__ scale) {
    const float s = *scale;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n8; i += (long)gridDim.x * blockDim.x) out[i] = codes8_to_bf16(codes[i], s);
}
