// bf16 packing, block sums and the RMSNorm of one row with 16-byte accesses, shared by elementwise.cu (its _vec8
// kernels, rms_norm_vec8) and gemv.cu (the decode GEMVs that normalise their input themselves), so the norm gives
// the same bits in both. KernelCompiler puts this file in place of its #include line; bf16 is defined before it.

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// The sum of v over the block (blockDim.x a multiple of 32), returned to every thread; partial holds 32 floats.
// A second call must not start before every thread has read the first's result (partial[0]).
__device__ __forceinline__ float block_sum(float v, float* partial) {
    v = warp_sum(v);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        v = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.f;
        v = warp_sum(v);
        if (threadIdx.x == 0) partial[0] = v;
    }
    __syncthreads();
    return partial[0];
}

// A bf16 is the top half of a float; in a 32-bit word the element at the lower address is the low half.
__device__ __forceinline__ void unpack2(unsigned int u, float* f) {
    f[0] = __uint_as_float(u << 16);
    f[1] = __uint_as_float(u & 0xffff0000u);
}

__device__ __forceinline__ void unpack8(uint4 w, float* f) {
    unpack2(w.x, f);
    unpack2(w.y, f + 2);
    unpack2(w.z, f + 4);
    unpack2(w.w, f + 6);
}

// Rounds two floats to bf16 (round to nearest even, as __float2bfloat16) and packs them as unpack2 reads them.
__device__ __forceinline__ unsigned int pack2(float lo, float hi) {
    return (unsigned int)__bfloat16_as_ushort(__float2bfloat16(lo)) | ((unsigned int)__bfloat16_as_ushort(__float2bfloat16(hi)) << 16);
}

__device__ __forceinline__ uint4 pack8(const float* f) {
    uint4 w;
    w.x = pack2(f[0], f[1]);
    w.y = pack2(f[2], f[3]);
    w.z = pack2(f[4], f[5]);
    w.w = pack2(f[6], f[7]);
    return w;
}

__device__ __forceinline__ float round_bf16(float v) { return __bfloat162float(__float2bfloat16(v)); }

// x / rms rounded to bf16, then times the weight (LlamaRMSNorm casts back to the input type before the scale); with a
// weight offset (Gemma's norms multiply by 1 + w), x / rms · (offset + w) in fp32, rounded once (Gemma's RMSNorm).
__device__ __forceinline__ float rms_scale(float x, float inv, float w, float offset = 0.f) {
    return offset == 0.f ? round_bf16(x * inv) * w : x * inv * (offset + w);
}

// yr = xr / rms(xr) * (offset + wr) for one row of `hidden` (a multiple of 8) elements, by the whole block: thread i
// takes the 8-element groups i, i + blockDim.x, ... The sum of squares adds in another order than elementwise.cu's
// scalar rms_norm, so inv may differ from it in its last bit; with the same blockDim it is the same everywhere.
__device__ __forceinline__ void rms_norm_row_vec8(const uint4* xr, const uint4* wr, uint4* yr, int hidden, float eps, float* partial,
                                                  float offset = 0.f) {
    const int groups = hidden / 8;
    float ss = 0.f;
    for (int i = threadIdx.x; i < groups; i += blockDim.x) {
        float v[8];
        unpack8(xr[i], v);
        #pragma unroll
        for (int j = 0; j < 8; j++) ss += v[j] * v[j];
    }
    const float inv = rsqrtf(block_sum(ss, partial) / hidden + eps);
    for (int i = threadIdx.x; i < groups; i += blockDim.x) {
        float v[8], g[8];
        unpack8(xr[i], v);
        unpack8(wr[i], g);
        #pragma unroll
        for (int j = 0; j < 8; j++) v[j] = rms_scale(v[j], inv, g[j], offset);
        yr[i] = pack8(v);
    }
}
