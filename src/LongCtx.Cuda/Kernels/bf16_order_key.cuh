// A 16-bit key that orders as the bf16 values do (TokenPicker.OrderKey's top 16 bits), judged on the bits so fast math
// cannot flush denormals: NaN is 0, below every number; -0 is +0. Kernels/draw_tokens.cu and token_logprobs.cu.
__device__ __forceinline__ unsigned key_of(unsigned short b) {
    if ((b & 0x7fffu) > 0x7f80u) return 0u;
    if (b == 0x8000u) b = 0u;
    return (b & 0x8000u) ? (~b & 0xffffu) : (b | 0x8000u);
}
