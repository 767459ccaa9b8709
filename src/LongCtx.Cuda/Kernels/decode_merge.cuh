// How the decode kernels (decode.cu, decode_mma.cu) merge the splits of a row's keys: the block that writes a
// (row, block column)'s last partial merges them, so no merge kernel is launched. Every split writes its normalised
// output [splits, rows, heads, D] (float) and log2-domain LSE [splits, rows, heads]; then each block counts itself
// in its column's arrival counter, and the block that finds all others there merges the column's heads into the
// bf16 output and the natural-log LSE, and sets the counter back to 0 for the next call. KernelCompiler puts this
// file in place of its #include line; D is the including kernel's head dim.

__device__ __forceinline__ float warp_max(float v) {
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ float warp_sum(float v) {
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Whether this block is its column's last: all of the block's partial writes are made visible before it counts
// itself, and the last block sees the others' before it reads them.
__device__ __forceinline__ bool last_split(unsigned* arrivals, int splits) {
    __shared__ bool last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        last = atomicAdd(arrivals, 1u) == (unsigned)splits - 1;
        if (last) *arrivals = 0; // every split has counted itself: nothing else touches it in this call
    }
    __syncthreads();
    if (last) __threadfence();
    return last;
}

// One warp merges (row, head) rh, of row_heads = rows · heads, by log-sum-exp over the splits. The partials are read
// past L1 (__ldcg): other SMs wrote them during this kernel. A row that sees nothing gets zeros and LSE -inf.
__device__ __forceinline__ void merge_splits(const float* part_out, const float* part_lse, bf16* out, float* lse,
                                             int splits, int row_heads, int rh, int lane) {
    bf16* o = out + (long)rh * D;
    float top = -INFINITY;
    for (int s = lane; s < splits; s += 32) top = fmaxf(top, __ldcg(part_lse + (long)s * row_heads + rh));
    top = warp_max(top);
    if (top == -INFINITY) {
        for (int i = lane; i < D; i += 32) o[i] = __float2bfloat16(0.f);
        if (lane == 0) lse[rh] = -INFINITY;
        return;
    }
    float sum = 0.f;
    for (int s = lane; s < splits; s += 32) sum += exp2f(__ldcg(part_lse + (long)s * row_heads + rh) - top); // -inf - finite: weight 0
    const float total = top + log2f(warp_sum(sum));

    constexpr int PER_LANE = (D + 31) / 32;
    float acc[PER_LANE] = {};
    for (int s = 0; s < splits; s++) {
        const float ls = __ldcg(part_lse + (long)s * row_heads + rh);
        if (ls == -INFINITY) continue; // the same for the whole warp: an empty split adds nothing
        const float weight = exp2f(ls - total);
        const float* p = part_out + ((long)s * row_heads + rh) * D;
        #pragma unroll
        for (int c = 0; c < PER_LANE; c++)
            if (c * 32 + lane < D) acc[c] = fmaf(weight, __ldcg(p + c * 32 + lane), acc[c]);
    }
    #pragma unroll
    for (int c = 0; c < PER_LANE; c++)
        if (c * 32 + lane < D) o[c * 32 + lane] = __float2bfloat16(acc[c]);
    if (lane == 0) lse[rh] = total * 0.6931471805599453f;
}
