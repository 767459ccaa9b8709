// The logit bias and the penalties of each row's draw (Sampling.LogitAdjustment), applied to a copy of the bf16 logits
// before draw_tokens picks from it (CudaBackend.DrawTokens): a thread an entry, each entry one token of one row (the
// host lists a token once per row, so no two threads touch one logit). The float operations are the host's, each
// rounded to nearest (the _rn intrinsics: --use_fast_math would otherwise fuse and approximate them), and the result
// is rounded to bf16 as every logit here is.
#include <cuda_bf16.h>

// entries[i]: row, token, the token's count in the row's output, whether the prompt or the output holds it.
// penalties[3 * row]: the row's repetition, frequency and presence penalties.
extern "C" __global__ void adjust_logits(__nv_bfloat16* logits, const int4* __restrict__ entries, const float* __restrict__ bias,
                                         const float* __restrict__ penalties, int count, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= count) return;
    const int4 e = entries[i];
    __nv_bfloat16* at = logits + (long)e.x * n + e.y;
    const float repetition = penalties[3 * e.x], frequency = penalties[3 * e.x + 1], presence = penalties[3 * e.x + 2];
    float x = __fadd_rn(__bfloat162float(*at), bias[i]);
    if (e.w) x = x > 0.f ? __fdiv_rn(x, repetition) : __fmul_rn(x, repetition);
    x = __fsub_rn(x, __fmul_rn(frequency, (float)e.z));
    x = __fsub_rn(x, e.z > 0 ? presence : 0.f);
    *at = __float2bfloat16_rn(x);
}
