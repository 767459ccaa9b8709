// The small kernels of a Llama-style decoder. Activations are bf16, arithmetic is fp32.
#include <cuda_bf16.h>
typedef __nv_bfloat16 bf16;
// NVRTC has no <math.h>: the infinity the kernels need, spelled out.
#define INFINITY __int_as_float(0x7f800000)

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

extern "C" {

// out[t, :] = table[ids[t], :]; one block per row.
__global__ void embedding(const int* ids, const bf16* table, bf16* out, int hidden) {
    long row = blockIdx.x;
    const bf16* src = table + (long)ids[row] * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) out[row * hidden + i] = src[i];
}

// y = x / rms(x) * w per row, as transformers' LlamaRMSNorm: normalise in fp32, round to bf16, then scale.
__global__ void rms_norm(const bf16* x, const bf16* w, bf16* y, int hidden, float eps) {
    __shared__ float partial[32];
    long row = blockIdx.x;
    const bf16* xr = x + row * hidden;
    float ss = 0.f;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) { float v = __bfloat162float(xr[i]); ss += v * v; }
    ss = warp_sum(ss);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        float v = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.f;
        v = warp_sum(v);
        if (threadIdx.x == 0) partial[0] = v;
    }
    __syncthreads();
    float inv = rsqrtf(partial[0] / hidden + eps);
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
        bf16 normed = __float2bfloat16(__bfloat162float(xr[i]) * inv);
        y[row * hidden + i] = __float2bfloat16(__bfloat162float(normed) * __bfloat162float(w[i]));
    }
}

__global__ void add_inplace(bf16* acc, const bf16* x, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        acc[i] = __float2bfloat16(__bfloat162float(acc[i]) + __bfloat162float(x[i]));
}

// y[r, :] += bias for every row.
__global__ void add_bias(bf16* y, const bf16* bias, long n, int width) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        y[i] = __float2bfloat16(__bfloat162float(y[i]) + __bfloat162float(bias[i % width]));
}

// Rotary embedding in place on x [rows, heads, d] (rotate_half pairing i with i + d/2). The angle is
// formed in double and reduced mod 2π so positions near 10^6 keep their phase; one thread per (row, i).
__global__ void rope(bf16* x, const int* positions, const float* inv_freq, int rows, int heads, int d, float attention_scale) {
    int half = d / 2;
    long idx = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (idx >= (long)rows * half) return;
    int row = idx / half, i = idx % half;
    double angle = (double)positions[row] * (double)inv_freq[i];
    angle = fmod(angle, 6.283185307179586);
    float s, c;
    sincosf((float)angle, &s, &c);
    c *= attention_scale; s *= attention_scale;
    for (int h = 0; h < heads; h++) {
        bf16* v = x + ((long)row * heads + h) * d;
        float a = __bfloat162float(v[i]), b = __bfloat162float(v[i + half]);
        v[i] = __float2bfloat16(a * c - b * s);
        v[i + half] = __float2bfloat16(b * c + a * s);
    }
}

// y = silu(gate) * up (y may alias gate).
__global__ void swiglu(const bf16* gate, const bf16* up, bf16* y, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
        float g = __bfloat162float(gate[i]);
        float silu = __bfloat162float(__float2bfloat16(g / (1.f + __expf(-g))));
        y[i] = __float2bfloat16(silu * __bfloat162float(up[i]));
    }
}

// Log-sum-exp merge of a partial attention result into an accumulator; one warp per (token, head) row.
__global__ void merge_attention(bf16* out_acc, float* lse_acc, const bf16* out_part, const float* lse_part, long rows, int d) {
    long row = (blockIdx.x * (long)blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    float a = lse_acc[row], p = lse_part[row];
    if (p == -INFINITY) return;
    float wa, wp, lse;
    if (a == -INFINITY) { wa = 0.f; wp = 1.f; lse = p; }
    else {
        float m = fmaxf(a, p);
        float ea = __expf(a - m), ep = __expf(p - m), sum = ea + ep;
        wa = ea / sum; wp = ep / sum; lse = m + __logf(sum);
    }
    bf16* o = out_acc + row * d;
    const bf16* q = out_part + row * d;
    for (int i = lane; i < d; i += 32) o[i] = __float2bfloat16(wa * __bfloat162float(o[i]) + wp * __bfloat162float(q[i]));
    __syncwarp();
    if (lane == 0) lse_acc[row] = lse;
}

// lse[t, h] = stats[h, t] for one block of rows and a group of `heads` of the `row_heads` in an LSE row
// (lse points at the group's first head): cuDNN writes its softmax statistics head-major.
__global__ void lse_from_head_major(const float* stats, float* lse, int rows, int heads, int row_heads) {
    long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (i >= (long)rows * heads) return;
    long t = i / heads;
    int h = (int)(i % heads);
    lse[t * row_heads + h] = stats[(long)h * rows + t];
}

__global__ void f32_to_bf16(const float* x, bf16* y, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) y[i] = __float2bfloat16(x[i]);
}

// destination[i, h, :] = source[indices[i, h], h, :] — KV compression keeps different rows per KV head.
__global__ void gather_rows(const bf16* source, const int* indices, bf16* destination, long n, int heads, int d) {
    for (long e = blockIdx.x * (long)blockDim.x + threadIdx.x; e < n * heads * d; e += (long)gridDim.x * blockDim.x) {
        long ih = e / d;
        int h = ih % heads;
        destination[e] = source[((long)indices[ih] * heads + h) * d + e % d];
    }
}

// mass[j, g] = Σ over queries i and the heads h of group g of exp(scale·q[i,h]·k[j,g] − lse[i,h]) where visible:
// the softmax mass key j receives, from the LSE a flash attention pass already computed. One thread per (j, g).
__global__ void key_attention_mass(const bf16* q, const bf16* k, const int* q_seq, const int* q_pos, const int* k_seq, const int* k_pos,
                                   const float* lse, float* mass, int tq, int tk, int heads, int kv_heads, int d, float scale) {
    long idx = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (idx >= (long)tk * kv_heads) return;
    int j = idx / kv_heads, g = idx % kv_heads, group = heads / kv_heads;
    const bf16* kr = k + idx * d;
    float total = 0.f;
    for (int i = 0; i < tq; i++) {
        if (q_seq[i] != k_seq[j] || k_pos[j] > q_pos[i]) continue;
        for (int hh = 0; hh < group; hh++) {
            int h = g * group + hh;
            float l = lse[(long)i * heads + h];
            if (l == -INFINITY) continue;
            const bf16* qr = q + ((long)i * heads + h) * d;
            float dot = 0.f;
            for (int e = 0; e < d; e++) dot += __bfloat162float(qr[e]) * __bfloat162float(kr[e]);
            total += __expf(dot * scale - l);
        }
    }
    mass[idx] = total;
}

}
