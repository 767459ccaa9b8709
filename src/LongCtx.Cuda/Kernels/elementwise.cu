// The small kernels of the decoders. Activations are bf16, arithmetic is fp32.
#include <cuda_bf16.h>
#include "pdl.cuh"
typedef __nv_bfloat16 bf16;
// NVRTC has no <math.h>: the infinity the kernels need, spelled out.
#define INFINITY __int_as_float(0x7f800000)
#include "rms_norm.cuh"

// The _vec8 kernels move 8 bf16 per 16-byte access (the host picks them when every pointer is 16-byte aligned and
// the lengths are whole groups of 8) and do exactly the float operations of their scalar twins, through the
// helpers below and in rms_norm.cuh, so both give the same bits.

// silu(g) rounded to bf16, as transformers' bf16 act_fn output is before the product with up.
__device__ __forceinline__ float silu_bf16(float g) { return round_bf16(g / (1.f + __expf(-g))); }

// gelu with the tanh approximation (PyTorch's gelu(approximate="tanh"), Gemma's gelu_pytorch_tanh) rounded to bf16,
// as silu_bf16.
__device__ __forceinline__ float gelu_tanh_bf16(float g) {
    return round_bf16(0.5f * g * (1.f + tanhf(0.7978845608028654f * (g + 0.044715f * g * g * g))));
}

#include "rope.cuh"

extern "C" {

// Up to COPY_LIST_MAX copies of 16-byte words in one launch (CudaBackend.CopyEach: a decode step's new K and V rows
// of every sequence into its cache), passed by value (CopyListArgument): copy c moves the launch's words
// [end[c - 1], end[c]), a thread a word.
#define COPY_LIST_MAX 32
struct CopyList {
    const uint4* from[COPY_LIST_MAX];
    uint4* to[COPY_LIST_MAX];
    int end[COPY_LIST_MAX];
    int count;
};

__global__ void copy_list(const __grid_constant__ CopyList list) {
    wait_for_previous_grid(); // launched as a dependent (Kernels/pdl.cuh)
    let_next_grid_start();
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    int c = 0;
    while (c < list.count && i >= list.end[c]) c++;
    if (c == list.count) return;
    const int j = i - (c == 0 ? 0 : list.end[c - 1]);
    list.to[c][j] = list.from[c][j];
}

// out[t, :] = table[ids[t], :]; one block per row.
__global__ void embedding(const int* ids, const bf16* table, bf16* out, int hidden) {
    long row = blockIdx.x;
    const bf16* src = table + (long)ids[row] * hidden;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) out[row * hidden + i] = src[i];
}

// y = x / rms(x) * w per row, as transformers' LlamaRMSNorm: normalise in fp32, round to bf16, then scale; with an
// offset, y = x / rms(x) * (offset + w) as Gemma's RMSNorm (rms_norm.cuh's rms_scale).
// One block per row; y may be x (every thread reads its elements before the block sum, writes them after).
__global__ void rms_norm(const bf16* x, const bf16* w, bf16* y, int hidden, float eps, float offset) {
    __shared__ float partial[32];
    long row = blockIdx.x;
    const bf16* xr = x + row * hidden;
    float ss = 0.f;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) { float v = __bfloat162float(xr[i]); ss += v * v; }
    float inv = rsqrtf(block_sum(ss, partial) / hidden + eps);
    for (int i = threadIdx.x; i < hidden; i += blockDim.x)
        y[row * hidden + i] = __float2bfloat16(rms_scale(__bfloat162float(xr[i]), inv, __bfloat162float(w[i]), offset));
}

// rms_norm for hidden % 8 == 0: thread i of the block takes the 8-element groups i, i + blockDim.x, ... of the
// row. The sum of squares adds in another order than rms_norm's, so inv may differ in its last bit.
__global__ void rms_norm_vec8(const bf16* x, const bf16* w, bf16* y, int hidden, float eps, float offset) {
    __shared__ float partial[32];
    wait_for_previous_grid(); // launched as a dependent (Kernels/pdl.cuh)
    let_next_grid_start();
    long row = blockIdx.x;
    rms_norm_row_vec8(reinterpret_cast<const uint4*>(x + row * hidden), reinterpret_cast<const uint4*>(w),
                      reinterpret_cast<uint4*>(y + row * hidden), hidden, eps, partial, offset);
}

__global__ void add_inplace(bf16* acc, const bf16* x, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        acc[i] = __float2bfloat16(__bfloat162float(acc[i]) + __bfloat162float(x[i]));
}

// add_inplace over n8 groups of 8 elements.
__global__ void add_inplace_vec8(uint4* acc, const uint4* x, long n8) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n8; i += (long)gridDim.x * blockDim.x) {
        float a[8], b[8];
        unpack8(acc[i], a);
        unpack8(x[i], b);
        #pragma unroll
        for (int j = 0; j < 8; j++) a[j] += b[j];
        acc[i] = pack8(a);
    }
}

// y[r, :] += bias for every row.
__global__ void add_bias(bf16* y, const bf16* bias, long n, int width) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        y[i] = __float2bfloat16(__bfloat162float(y[i]) + __bfloat162float(bias[i % width]));
}

// Rotary embedding in place on x [rows, heads, d] (rotate_half pairing i with i + d/2); one thread per
// (row, i), looping over the heads so the angle is computed once.
__global__ void rope(bf16* x, const int* positions, const float* inv_freq, int rows, int heads, int d, float attention_scale) {
    int half = d / 2;
    long idx = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (idx >= (long)rows * half) return;
    int row = idx / half, i = idx % half;
    float c, s;
    rope_cos_sin(positions[row], inv_freq[i], attention_scale, &c, &s);
    for (int h = 0; h < heads; h++) {
        bf16* v = x + ((long)row * heads + h) * d;
        float a = __bfloat162float(v[i]), b = __bfloat162float(v[i + half]);
        rope_rotate(&a, &b, c, s);
        v[i] = __float2bfloat16(a);
        v[i + half] = __float2bfloat16(b);
    }
}

// rope for d % 16 == 0, over q [rows, q_heads, d] and k [rows, k_heads, d] at once (k_heads = 0: q alone): one
// thread per (row, 8 consecutive i, run of head_run heads of the q_heads + k_heads), each head one 16-byte access
// to each half. A prefill gives a thread every head (cos and sin once per row and pair); a decode step's single
// row gives each thread one head (with a thread per pair group alone, 8 threads would rotate all 40 heads of an 8B
// decode row one after another).
__global__ void rope_vec8(bf16* q, bf16* k, const int* positions, const float* inv_freq, int rows, int q_heads, int k_heads, int d,
                          int head_run, float attention_scale) {
    wait_for_previous_grid(); // launched as a dependent (Kernels/pdl.cuh)
    let_next_grid_start();
    int half = d / 2, groups = half / 8, heads = q_heads + k_heads, runs = (heads + head_run - 1) / head_run;
    long idx = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (idx >= (long)rows * groups * runs) return;
    int run = idx % runs, i0 = (idx / runs % groups) * 8, row = idx / runs / groups;
    int position = positions[row];
    float c[8], s[8];
    #pragma unroll
    for (int j = 0; j < 8; j++) rope_cos_sin(position, inv_freq[i0 + j], attention_scale, &c[j], &s[j]);
    for (int h = run * head_run, last = min(heads, h + head_run); h < last; h++) {
        bf16* v = h < q_heads ? q + ((long)row * q_heads + h) * d : k + ((long)row * k_heads + h - q_heads) * d;
        uint4* first = reinterpret_cast<uint4*>(v + i0);
        uint4* second = reinterpret_cast<uint4*>(v + i0 + half);
        float a[8], b[8];
        unpack8(*first, a);
        unpack8(*second, b);
        #pragma unroll
        for (int j = 0; j < 8; j++) rope_rotate(&a[j], &b[j], c[j], s[j]);
        *first = pack8(a);
        *second = pack8(b);
    }
}

// y = silu(gate) * up (y may alias gate).
__global__ void swiglu(const bf16* gate, const bf16* up, bf16* y, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        y[i] = __float2bfloat16(silu_bf16(__bfloat162float(gate[i])) * __bfloat162float(up[i]));
}

// swiglu over n8 groups of 8 elements (y may alias gate: each group is read before it is written).
__global__ void swiglu_vec8(const uint4* gate, const uint4* up, uint4* y, long n8) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n8; i += (long)gridDim.x * blockDim.x) {
        float g[8], u[8];
        unpack8(gate[i], g);
        unpack8(up[i], u);
        #pragma unroll
        for (int j = 0; j < 8; j++) g[j] = silu_bf16(g[j]) * u[j];
        y[i] = pack8(g);
    }
}

// y = gelu_tanh(gate) * up (y may alias gate).
__global__ void gelu_tanh_glu(const bf16* gate, const bf16* up, bf16* y, long n) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        y[i] = __float2bfloat16(gelu_tanh_bf16(__bfloat162float(gate[i])) * __bfloat162float(up[i]));
}

// gelu_tanh_glu over n8 groups of 8 elements (y may alias gate: each group is read before it is written).
__global__ void gelu_tanh_glu_vec8(const uint4* gate, const uint4* up, uint4* y, long n8) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n8; i += (long)gridDim.x * blockDim.x) {
        float g[8], u[8];
        unpack8(gate[i], g);
        unpack8(up[i], u);
        #pragma unroll
        for (int j = 0; j < 8; j++) g[j] = gelu_tanh_bf16(g[j]) * u[j];
        y[i] = pack8(g);
    }
}

// x = cap · tanh(x / cap) in place (Gemma 2's final logits), in fp32, rounded once.
__global__ void soft_cap(bf16* x, long n, float cap) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        x[i] = __float2bfloat16(cap * tanhf(__bfloat162float(x[i]) / cap));
}

// soft_cap over n8 groups of 8 elements.
__global__ void soft_cap_vec8(uint4* x, long n8, float cap) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n8; i += (long)gridDim.x * blockDim.x) {
        float v[8];
        unpack8(x[i], v);
        #pragma unroll
        for (int j = 0; j < 8; j++) v[j] = cap * tanhf(v[j] / cap);
        x[i] = pack8(v);
    }
}

// x = x · factor in place (Gemma's embedding scale).
__global__ void scale(bf16* x, long n, float factor) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x)
        x[i] = __float2bfloat16(__bfloat162float(x[i]) * factor);
}

// scale over n8 groups of 8 elements.
__global__ void scale_vec8(uint4* x, long n8, float factor) {
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n8; i += (long)gridDim.x * blockDim.x) {
        float v[8];
        unpack8(x[i], v);
        #pragma unroll
        for (int j = 0; j < 8; j++) v[j] *= factor;
        x[i] = pack8(v);
    }
}

// The log-sum-exp merge of a partial attention result (LSE p) into an accumulator (LSE a): the weights of both and the
// merged LSE; false when the part saw no key and leaves the accumulator as it is.
__device__ __forceinline__ bool merge_weights(float a, float p, float& wa, float& wp, float& lse) {
    if (p == -INFINITY) return false;
    if (a == -INFINITY) { wa = 0.f; wp = 1.f; lse = p; return true; }
    float m = fmaxf(a, p);
    float ea = __expf(a - m), ep = __expf(p - m), sum = ea + ep;
    wa = ea / sum; wp = ep / sum; lse = m + __logf(sum);
    return true;
}

// Log-sum-exp merge of a partial attention result into an accumulator; one warp per (token, head) row.
__global__ void merge_attention(bf16* out_acc, float* lse_acc, const bf16* out_part, const float* lse_part, long rows, int d) {
    long row = (blockIdx.x * (long)blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    float wa, wp, lse;
    if (!merge_weights(lse_acc[row], lse_part[row], wa, wp, lse)) return;
    bf16* o = out_acc + row * d;
    const bf16* q = out_part + row * d;
    for (int i = lane; i < d; i += 32) o[i] = __float2bfloat16(wa * __bfloat162float(o[i]) + wp * __bfloat162float(q[i]));
    __syncwarp();
    if (lane == 0) lse_acc[row] = lse;
}

// merge_attention with 8 elements per thread (16-byte accesses): d/8 threads per (token, head) row, a power of two
// up to 32 (d = 8 .. 256), so a row's threads share a warp and all read its LSE before the first of them writes it.
// The ring's merges read and write whole [rows, heads, d] outputs: at 2 bytes per access they ran far below memory speed.
__global__ void merge_attention_vec8(uint4* out_acc, float* lse_acc, const uint4* out_part, const float* lse_part, long rows, int d) {
    const int per_row = d >> 3;
    long t = blockIdx.x * (long)blockDim.x + threadIdx.x;
    long row = t / per_row;
    float wa, wp, lse;
    bool merges = row < rows && merge_weights(lse_acc[row], lse_part[row], wa, wp, lse);
    __syncwarp(); // every lane gets here: none has returned yet
    if (!merges) return;
    float o[8], q[8];
    unpack8(out_acc[t], o);
    unpack8(out_part[t], q);
    #pragma unroll
    for (int j = 0; j < 8; j++) o[j] = wa * o[j] + wp * q[j];
    out_acc[t] = pack8(o);
    if (t % per_row == 0) lse_acc[row] = lse;
}

// The N-way merge of a distributed decode step (IBackend.MergeAttentionParts): part j of entry i (a token's head) at
// parts[(j·rows + i)·d], its LSE at lses[j·rows + i]; out[i] = Σ_j exp(lse_j − L)·part_j with L their logsumexp, or 0
// where no part saw a key. 8 elements per thread (16-byte accesses), d/8 threads an entry; every thread reads the
// entry's N LSEs itself (N is the rank count), so no thread waits for another.
__global__ void merge_attention_parts_vec8(const uint4* parts, const float* lses, uint4* out, long rows, int d, int n) {
    const int per_row = d >> 3;
    long t = blockIdx.x * (long)blockDim.x + threadIdx.x;
    long row = t / per_row;
    if (row >= rows) return;
    float m = -INFINITY;
    for (int j = 0; j < n; j++) m = fmaxf(m, lses[j * rows + row]);
    float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    if (m != -INFINITY) {
        float sum = 0.f;
        for (int j = 0; j < n; j++) sum += __expf(lses[j * rows + row] - m);
        for (int j = 0; j < n; j++) {
            float w = __expf(lses[j * rows + row] - m) / sum;
            if (w == 0.f) continue;
            float p[8];
            unpack8(parts[j * rows * per_row + t], p);
            #pragma unroll
            for (int e = 0; e < 8; e++) acc[e] += w * p[e];
        }
    }
    out[t] = pack8(acc);
}

// merge_attention_parts for any d: one warp per entry.
__global__ void merge_attention_parts(const bf16* parts, const float* lses, bf16* out, long rows, int d, int n) {
    long row = (blockIdx.x * (long)blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    float m = -INFINITY;
    for (int j = 0; j < n; j++) m = fmaxf(m, lses[j * rows + row]);
    float sum = 0.f;
    if (m != -INFINITY)
        for (int j = 0; j < n; j++) sum += __expf(lses[j * rows + row] - m);
    for (int i = lane; i < d; i += 32) {
        float acc = 0.f;
        if (m != -INFINITY)
            for (int j = 0; j < n; j++) {
                float w = __expf(lses[j * rows + row] - m) / sum;
                if (w != 0.f) acc += w * __bfloat162float(parts[(j * rows + row) * d + i]);
            }
        out[row * d + i] = __float2bfloat16(acc);
    }
}

// lse[t, h] = stats[h, t] for one block of rows: cuDNN writes its softmax statistics head-major.
__global__ void lse_from_head_major(const float* stats, float* lse, int rows, int heads) {
    long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (i >= (long)rows * heads) return;
    lse[i] = stats[(i % heads) * rows + i / heads];
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

}
