// APB's training-free compressor ranks a block's keys by the attention the embedded query pays them:
//   mass[j, g] = Σ over query rows i and the heads h of KV group g of exp(scale·q[i,h]·k[j,g] − lse[i,h]),
// over the visible pairs (same sequence, key not after the query), with the LSE a flash pass already computed.
// The query is tens of rows and the candidates a whole block (tens of thousands of keys, every layer), so a block of
// 4 warps owns 64 keys of one KV head: it stages their rows in shared memory once and runs all the group's query rows
// past them on tensor cores (mma.sync m16n8k16, 16 rows a warp at a time), summing each key's column in registers.
// (One thread per (key, head) re-reading its key row for every query row spent its time on uncoalesced loads.) A key's mass is complete when its block finishes: no atomics, nothing zeroed first.
#include "tensor_core.cuh"

#define KEYS 64
#define WARPS 4
#define MAX_D 256

extern "C" __global__ void __launch_bounds__(WARPS * 32)
key_attention_mass(const bf16* q, const bf16* k, const int* q_seq, const int* q_pos, const int* k_seq, const int* k_pos,
                   const float* lse, float* mass, int tq, int tk, int heads, int kv_heads, int d, float scale) {
    // 8 bf16 of padding a row put the 8 keys x 4 lanes of a B-fragment load on 32 distinct banks.
    __shared__ __align__(16) bf16 tile[KEYS * (MAX_D + 8)];
    __shared__ int tile_seq[KEYS], tile_pos[KEYS];
    __shared__ float column[WARPS][KEYS];
    const int stride = d + 8, g = blockIdx.y, key0 = blockIdx.x * KEYS, group = heads / kv_heads;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

    const int pieces = d / 8;  // 16-byte pieces of a key row
    for (int p = threadIdx.x; p < KEYS * pieces; p += WARPS * 32) {
        int r = p / pieces, c = (p % pieces) * 8, j = key0 + r;
        uint4 v = make_uint4(0u, 0u, 0u, 0u);
        if (j < tk) v = *reinterpret_cast<const uint4*>(k + ((long)j * kv_heads + g) * d + c);
        *reinterpret_cast<uint4*>(tile + r * stride + c) = v;
    }
    if (threadIdx.x < KEYS) {
        int j = key0 + threadIdx.x;
        tile_seq[threadIdx.x] = j < tk ? k_seq[j] : -1;  // past the end: a sequence no query is in
        tile_pos[threadIdx.x] = j < tk ? k_pos[j] : 0;
    }
    __syncthreads();

    // The group's query rows r = i·group + hh (query i, head g·group + hh); a lane holds rows r0 + lane/4 and
    // r0 + lane/4 + 8 of the MMA and, of each 8-key tile n, keys n·8 + (lane % 4)·2 and the one after.
    const int rows = tq * group;
    float sum[8][2] = {};
    for (int r0 = warp * 16; r0 < rows; r0 += WARPS * 16) {
        const bf16* qr[2];
        float l[2];
        int seq[2], pos[2];
        for (int half = 0; half < 2; half++) {
            int r = r0 + lane / 4 + half * 8, i = r / group, h = g * group + r % group;
            bool in = r < rows;
            qr[half] = in ? q + ((long)i * heads + h) * d : nullptr;
            l[half] = in ? lse[(long)i * heads + h] : -INFINITY;  // -inf: the row sees no key (or is padding)
            seq[half] = in ? q_seq[i] : -2;
            pos[half] = in ? q_pos[i] : 0;
        }
        float acc[8][4] = {};
        for (int kk = 0; kk < d; kk += 16) {
            int c = kk + (lane % 4) * 2;
            unsigned a[4];
            a[0] = qr[0] ? *reinterpret_cast<const unsigned*>(qr[0] + c) : 0u;
            a[1] = qr[1] ? *reinterpret_cast<const unsigned*>(qr[1] + c) : 0u;
            a[2] = qr[0] ? *reinterpret_cast<const unsigned*>(qr[0] + c + 8) : 0u;
            a[3] = qr[1] ? *reinterpret_cast<const unsigned*>(qr[1] + c + 8) : 0u;
#pragma unroll
            for (int n = 0; n < 8; n++) {
                const bf16* kr = tile + (n * 8 + lane / 4) * stride + c;
                unsigned b[2] = {*reinterpret_cast<const unsigned*>(kr), *reinterpret_cast<const unsigned*>(kr + 8)};
                mma16816(acc[n], a, b);
            }
        }
#pragma unroll
        for (int n = 0; n < 8; n++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                int col = n * 8 + (lane % 4) * 2 + e;
                int ks = tile_seq[col], kp = tile_pos[col];
#pragma unroll
                for (int half = 0; half < 2; half++)
                    if (l[half] != -INFINITY && ks == seq[half] && kp <= pos[half]) sum[n][e] += __expf(acc[n][half * 2 + e] * scale - l[half]);
            }
    }
    // A column's rows are spread over the 8 lanes of equal lane % 4: add them, then the 4 warps' sums.
#pragma unroll
    for (int n = 0; n < 8; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            float v = sum[n][e];
            v += __shfl_xor_sync(0xffffffffu, v, 4);
            v += __shfl_xor_sync(0xffffffffu, v, 8);
            v += __shfl_xor_sync(0xffffffffu, v, 16);
            if (lane < 4) column[warp][n * 8 + lane * 2 + e] = v;
        }
    __syncthreads();
    if (threadIdx.x < KEYS && key0 + threadIdx.x < tk) {
        float total = 0.f;
        for (int w = 0; w < WARPS; w++) total += column[w][threadIdx.x];
        mass[(long)(key0 + threadIdx.x) * kv_heads + g] = total;
    }
}
