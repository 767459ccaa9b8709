// The rotary embedding of one pair of a head, shared by elementwise.cu (rope, rope_vec8) and gemv.cu (the decode
// q/k GEMV that rotates its outputs), so both give the same bits. KernelCompiler puts this file in place of its
// #include line.

// cos and sin of position · inv_freq, times the attention scale. The angle is formed in double and reduced
// mod 2π so positions near 10^6 keep their phase.
__device__ __forceinline__ void rope_cos_sin(int position, float inv_freq, float attention_scale, float* c, float* s) {
    double angle = fmod((double)position * (double)inv_freq, 6.283185307179586);
    sincosf((float)angle, s, c);
    *c *= attention_scale;
    *s *= attention_scale;
}

// rotate_half on one pair: (a, b) -> (a cos - b sin, b cos + a sin). The _rn intrinsics keep the compiler from
// contracting into FMAs, which it might do differently in the scalar and the vector kernel.
__device__ __forceinline__ void rope_rotate(float* a, float* b, float c, float s) {
    float x = *a, y = *b;
    *a = __fsub_rn(__fmul_rn(x, c), __fmul_rn(y, s));
    *b = __fadd_rn(__fmul_rn(y, c), __fmul_rn(x, s));
}
