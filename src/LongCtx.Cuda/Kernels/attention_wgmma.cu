// Flash attention on Hopper (sm_90a), head dim 128: the same contract as attention.cu (the engine's mask rule
// from per-row sequences and positions with the sliding window, hidden tiles skipped by their 64-row summaries,
// split-K blocks, the soft cap, output and natural-log LSE), built the FlashAttention-3 way. A block owns 128 query rows of one head and has three
// warpgroups:
// - warpgroup 2, the producer, gives up its registers (setmaxnreg) and has one thread load tiles with TMA
//   (cp.async.bulk.tensor through the tensor maps CudaBackend.Flash.cs encodes): Q once, then each visible key
//   tile's K and V into rings of two stages, each stage with a "full" mbarrier (its bytes have landed) and an
//   "empty" one (both consumer warpgroups are done with it: K after S, V after PV, so each load has about two
//   turns to land);
// - warpgroups 0 and 1, the consumers, own 64 query rows each and run warpgroup MMAs (wgmma.mma_async) with Q, K
//   and V read from shared memory through matrix descriptors and P passed from the score accumulators as the A
//   operand in registers. Each overlaps within itself: a turn issues the next tile's S = QKᵀ and then this tile's
//   O += PV, and the next tile's softmax runs while PV does (two P buffers, O rescaled once PV is done). The two
//   take turns (named barriers 1 and 2) to issue, so that one warpgroup's softmax also runs under the other's MMAs.
// TMA writes the tiles in wgmma's 128-byte swizzle: a tile of R rows is two panels [R][64 dims] of 128-byte rows,
// the 16-byte chunk c of row r stored at chunk c ^ (r % 8), each panel 1024-byte aligned. Q and K are read
// K-major (dims contiguous), V MN-major (the same layout, read transposed: PV's reduction runs over keys).
// About twice attention.cu's rate on Hopper; each of these choices (the overlap inside a warpgroup, TMA loads by a
// producer warpgroup) was faster than what it replaced (docs/PERFORMANCE.md has the figures).
#include "tensor_core.cuh"
#include "layout_tiles.cuh"

#define D 128
#define BQ 128          // query rows per block (CudaBackend.FlashKernelFor)
#define BK 128          // keys per tile (CudaBackend.FlashKernelFor)
#define SUMMARY 64      // rows per layout summary (DeviceLayout.Tile)
#define CONSUMERS 256
#define PRODUCERS 128
#define TURN_BARRIER 1  // named barriers 1 and 2: warpgroup w's turn to issue MMAs is barrier 1 + w
#define PANEL(rows) ((rows) * 128) // bytes of one 64-dim panel of a tile

__device__ __forceinline__ TileInfo key_summary(const TileInfo* k_tiles, int kt, int tk) {
    return summary_of(k_tiles, kt * (BK / SUMMARY), BK / SUMMARY, (tk + SUMMARY - 1) / SUMMARY);
}

__device__ __forceinline__ int next_visible_key_tile(const TileInfo* k_tiles, const TileInfo& qt, int from, int count, int tk, int window) {
    int t = from;
    while (t < count && tile_hidden(qt, key_summary(k_tiles, t, tk), window)) t++;
    return t;
}

// A shared-memory matrix descriptor with the 128-byte swizzle: start address, leading and stride byte offsets.
__device__ __forceinline__ unsigned long long sw128_desc(unsigned addr, unsigned leading, unsigned stride) {
    return (unsigned long long)((addr & 0x3FFFF) >> 4) | ((unsigned long long)(leading >> 4) << 16)
         | ((unsigned long long)(stride >> 4) << 32) | (1ull << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
// Until at most N committed groups of this warpgroup's MMAs are still running.
template <int N> __device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;" :: "n"(N) : "memory"); }
// After the wait: the accumulators are defined here, so no read of them moves above it.
__device__ __forceinline__ void settled(float (&d)[64]) {
    #pragma unroll
    for (int i = 0; i < 64; i++) asm volatile("" : "+f"(d[i]) :: "memory");
}

// The 64 fp32 accumulators of an m64n128 wgmma, as the first 64 operands of its inline asm.
#define ACCUMULATORS \
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#define ACCUMULATOR_OPERANDS(d) \
      "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
      "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
      "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
      "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
      "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
      "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
      "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
      "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])

// d (64 x 128, fp32) = A·B (+ d when accumulate), A from shared memory (64 x 16, K-major), B from shared memory
// (16 x 128, K-major): one k-step of S = QKᵀ.
__device__ __forceinline__ void wgmma_ss(float (&d)[64], unsigned long long a, unsigned long long b, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
        ACCUMULATORS
        "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      :
      ACCUMULATOR_OPERANDS(d)
      : "l"(a), "l"(b), "r"(accumulate));
}

// d += A·B, A (64 x 16 bf16) from registers in the mma.sync fragment layout, B from shared memory MN-major
// (transposed): one k-step (16 keys) of O += PV.
__device__ __forceinline__ void wgmma_rs(float (&d)[64], const unsigned* a, unsigned long long b) {
    asm volatile("{\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
        ACCUMULATORS
        "}, {%64, %65, %66, %67}, %68, 1, 1, 1, 1;\n}\n"
      :
      ACCUMULATOR_OPERANDS(d)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
}

__device__ __forceinline__ void mbar_init(unsigned bar, int count) { asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" :: "r"(bar), "r"(count) : "memory"); }
__device__ __forceinline__ void mbar_arrive(unsigned bar) {
    asm volatile("{\n.reg .b64 state;\nmbarrier.arrive.shared::cta.b64 state, [%0];\n}" :: "r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_wait(unsigned bar, int parity) {
    asm volatile("{\n.reg .pred done;\nWAIT:\nmbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n@!done bra WAIT;\n}" :: "r"(bar), "r"(parity) : "memory");
}
__device__ __forceinline__ void named_sync(int id) { asm volatile("bar.sync %0, 256;" :: "r"(id) : "memory"); }
__device__ __forceinline__ void named_arrive(int id) { asm volatile("bar.arrive %0, 256;" :: "r"(id) : "memory"); }

// A CUtensorMap (cuTensorMapEncodeTiled's 128 bytes), passed by value as a __grid_constant__ parameter.
struct __align__(64) TensorMap { unsigned long long bits[16]; };

// One box of a 3-D tensor map (dims: 64 head dims, head, rows) into shared memory, counted on the barrier's bytes.
__device__ __forceinline__ void tma_load(unsigned dst, const TensorMap* map, int dim, int head, int row, unsigned bar) {
    asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];"
        :: "r"(dst), "l"(map), "r"(dim), "r"(head), "r"(row), "r"(bar) : "memory");
}
// Arrives on the barrier and adds `bytes` to the transfers its phase waits for.
__device__ __forceinline__ void mbar_expect(unsigned bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" :: "r"(bar), "r"(bytes) : "memory");
}

// S = Q Kᵀ for this warpgroup's 64 rows against a key tile (not committed).
__device__ __forceinline__ void issue_scores(float (&s)[64], unsigned sq, unsigned kb, int wg) {
    #pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
        const unsigned at = (kk & 3) * 32;
        wgmma_ss(s, sw128_desc(sq + (kk >> 2) * PANEL(BQ) + wg * 64 * 128 + at, 16, 1024),
                    sw128_desc(kb + (kk >> 2) * PANEL(BK) + at, 16, 1024), kk > 0);
    }
}

// One tile's loads (BQ = BK = 128 rows): the two 64-dim panels of rows [row, row + 128) of head `head`, counted on
// barrier `bar`.
__device__ __forceinline__ void load_tile(unsigned dst, const TensorMap* map, int head, int row, unsigned bar) {
    mbar_expect(bar, 2 * PANEL(128));
    tma_load(dst, map, 0, head, row, bar);
    tma_load(dst + PANEL(128), map, 64, head, row, bar);
}

// Hides the keys a partly visible tile's row may not see: only tiles on a diagonal, a window's edge or a sequence
// border, whose keys' sequences and positions are read from global memory (cached). Soft caps the scores first.
__device__ __forceinline__ void mask_scores(float (&s)[64], const TileInfo& qt, const TileInfo* k_tiles, const int* k_seq, const int* k_pos,
    int kt, int tk, const int (&rs)[2], const int (&rp)[2], int tc, int window, float cap_in, float cap_out) {
    if (cap_in != 0.f) {
        #pragma unroll
        for (int i = 0; i < 64; i++) s[i] = soft_capped(s[i], cap_in, cap_out);
    }
    if (tile_visible(qt, key_summary(k_tiles, kt, tk), window) && (kt + 1) * BK <= tk) return;
    const int* ks = k_seq + kt * BK;
    const int* kp = k_pos + kt * BK;
    #pragma unroll
    for (int half = 0; half < 2; half++)
        #pragma unroll
        for (int i = 0; i < BK / 8; i++)
            #pragma unroll
            for (int e = 0; e < 2; e++) {
                const int col = i * 8 + tc * 2 + e;
                if (kt * BK + col >= tk || !sees(rs[half], rp[half], ks[col], kp[col], window)) s[4 * i + 2 * half + e] = -INFINITY;
            }
}

// The online softmax of one tile in the log2 domain (as attention.cu): the scores become exp2(s·scale − m) under the
// rows' new maxima m, l gains their sums, alpha is what O must be scaled by; returns whether any maximum grew.
__device__ __forceinline__ bool online_softmax(float (&s)[64], float (&m)[2], float (&l)[2], float (&alpha)[2], float scale_log2) {
    bool grew = false;
    #pragma unroll
    for (int half = 0; half < 2; half++) {
        float mx = -INFINITY;
        #pragma unroll
        for (int i = 0; i < BK / 8; i++) mx = fmaxf(mx, fmaxf(s[4 * i + 2 * half], s[4 * i + 2 * half + 1]));
        const float top = fmaxf(m[half], quad_max(mx) * scale_log2);
        const float base = top == -INFINITY ? 0.f : top;
        alpha[half] = exp2f(m[half] - base);
        grew |= top != m[half];
        float sum = 0.f;
        #pragma unroll
        for (int i = 0; i < BK / 8; i++) {
            s[4 * i + 2 * half] = exp2f(fmaf(s[4 * i + 2 * half], scale_log2, -base));
            s[4 * i + 2 * half + 1] = exp2f(fmaf(s[4 * i + 2 * half + 1], scale_log2, -base));
            sum += s[4 * i + 2 * half] + s[4 * i + 2 * half + 1];
        }
        l[half] = l[half] * alpha[half] + sum;
        m[half] = top;
    }
    return grew;
}

__device__ __forceinline__ void rescale(float (&o)[64], const float (&alpha)[2]) {
    #pragma unroll
    for (int i = 0; i < D / 8; i++) {
        o[4 * i] *= alpha[0]; o[4 * i + 1] *= alpha[0];
        o[4 * i + 2] *= alpha[1]; o[4 * i + 3] *= alpha[1];
    }
}

// P in bf16 as the A operand: k-step kk (keys 16kk..16kk+15) is column groups 2kk and 2kk+1.
__device__ __forceinline__ void to_operand(const float (&s)[64], unsigned (&p)[BK / 4]) {
    #pragma unroll
    for (int kk = 0; kk < BK / 16; kk++) {
        p[4 * kk] = pack2(s[8 * kk], s[8 * kk + 1]);
        p[4 * kk + 1] = pack2(s[8 * kk + 2], s[8 * kk + 3]);
        p[4 * kk + 2] = pack2(s[8 * kk + 4], s[8 * kk + 5]);
        p[4 * kk + 3] = pack2(s[8 * kk + 6], s[8 * kk + 7]);
    }
}

// O += P V in 8 k-steps of 16 keys (V read transposed: its two 64-dim panels a leading offset apart, each 8 keys
// 1024 bytes on); not committed.
__device__ __forceinline__ void issue_values(float (&o)[64], const unsigned (&p)[BK / 4], unsigned vb) {
    #pragma unroll
    for (int kk = 0; kk < BK / 16; kk++)
        wgmma_rs(o, p + 4 * kk, sw128_desc(vb + kk * 16 * 128, PANEL(BK), 1024));
}

// The P operand stays in these registers until the MMAs that read it are waited for.
__device__ __forceinline__ void held(unsigned (&p)[BK / 4]) {
    #pragma unroll
    for (int i = 0; i < BK / 4; i++) asm volatile("" : "+r"(p[i]) :: "memory");
}

// Registers a thread: the producer needs few, the consumers hold O, S and two P buffers (128·24 + 256·240 <= 64K).
#define PRODUCER_REGS 24
#define CONSUMER_REGS 240

extern "C" __global__ void __launch_bounds__(CONSUMERS + PRODUCERS, 1) flash_attention_wgmma(
    const __grid_constant__ TensorMap mq, const __grid_constant__ TensorMap mk, const __grid_constant__ TensorMap mv,
    const int* __restrict__ q_seq, const int* __restrict__ q_pos, const int* __restrict__ k_seq, const int* __restrict__ k_pos,
    const TileInfo* __restrict__ q_tiles, const TileInfo* __restrict__ k_tiles,
    bf16* __restrict__ out, float* __restrict__ lse,
    int tq, int tk, int heads, int kv_heads, float scale_log2, int tiles_per_split, int window, float softcap)
{
    // [Q | V stages 0, 1 | K stages 0, 1 | barriers] from the first 1024-byte boundary of dynamic shared memory.
    extern __shared__ __align__(1024) unsigned char smem[];
    const unsigned base = (smem_addr(smem) + 1023) & ~1023u;
    const unsigned sq = base, sv = sq + 2 * PANEL(BQ), sk = sv + 4 * PANEL(BK);
    const unsigned bars = sk + 4 * PANEL(BK), q_full = bars, full_v = bars + 8, empty_v = bars + 24, full_k = bars + 40, empty_k = bars + 56;

    const long q_stride = (long)heads * D;
    const BlockWork work = block_work(BQ, BK, SUMMARY, q_tiles, tq, tk, heads, kv_heads, tiles_per_split);
    const int q0 = work.q0, h = work.h, g = work.g, first_tile = work.first_tile, key_tiles = work.key_tiles;
    const TileInfo qt = work.qt;
    out += work.part_row * q_stride;
    lse += work.part_row * heads;
    // Soft-capped scores leave mask_scores already in the log2 domain: the softmax multiplies them by 1.
    const float cap_in = softcap > 0.f ? scale_log2 * 0.6931471805599453f / softcap : 0.f, cap_out = softcap * 1.4426950408889634f;
    const float multiplier = softcap > 0.f ? 1.f : scale_log2;

    if (threadIdx.x == 0) {
        mbar_init(q_full, 1);
        for (int i = 0; i < 2; i++) {
            mbar_init(full_v + 8 * i, 1);
            mbar_init(full_k + 8 * i, 1);
            mbar_init(empty_v + 8 * i, CONSUMERS);
            mbar_init(empty_k + 8 * i, CONSUMERS);
        }
    }
    __syncthreads();

    if (threadIdx.x >= CONSUMERS) {
        asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" :: "n"(PRODUCER_REGS));
        if (threadIdx.x != CONSUMERS) return;
        load_tile(sq, &mq, h, q0, q_full);
        int n = 0;
        for (int kt = next_visible_key_tile(k_tiles, qt, first_tile, key_tiles, tk, window); kt < key_tiles;
             kt = next_visible_key_tile(k_tiles, qt, kt + 1, key_tiles, tk, window), n++) {
            // Stage n & 1, its (n / 2)-th fill: wait for the end of the fill before (a fresh barrier passes parity 1).
            const int st = n & 1, parity = ((n >> 1) & 1) ^ 1;
            mbar_wait(empty_k + 8 * st, parity);
            load_tile(sk + st * 2 * PANEL(BK), &mk, g, kt * BK, full_k + 8 * st);
            mbar_wait(empty_v + 8 * st, parity);
            load_tile(sv + st * 2 * PANEL(BK), &mv, g, kt * BK, full_v + 8 * st);
        }
        return;
    }

    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" :: "n"(CONSUMER_REGS));
    // This thread's accumulator element e of 8-column group i sits at row 16·warp + gr (+8 for e >= 2) of the
    // warpgroup's 64, column 8i + 2tc + (e & 1): the mma.sync layout, one 16-row tile per warp. Its two rows'
    // sequences and positions stay in registers for the mask.
    const int wg = threadIdx.x >> 7, warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31, gr = lane >> 2, tc = lane & 3;
    const int row0 = wg * 64 + warp * 16 + gr;
    int rs[2], rp[2];
    #pragma unroll
    for (int half = 0; half < 2; half++) {
        const int r = q0 + row0 + half * 8;
        rs[half] = r < tq ? q_seq[r] : -2;
        rp[half] = r < tq ? q_pos[r] : -1;
    }
    float o[64], s[64];
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
    #pragma unroll
    for (int i = 0; i < 64; i++) o[i] = 0.f;

    if (wg == 1) named_arrive(TURN_BARRIER); // warpgroup 0 takes the first turn
    int kt = next_visible_key_tile(k_tiles, qt, first_tile, key_tiles, tk, window);
    if (kt < key_tiles) {
        // The first turn issues S of the first tile alone.
        mbar_wait(q_full, 0);
        mbar_wait(full_k, 0);
        named_sync(TURN_BARRIER + wg);
        wgmma_fence();
        issue_scores(s, sq, sk, wg);
        wgmma_commit();
        named_arrive(TURN_BARRIER + (wg ^ 1));
        wgmma_wait<0>();
        settled(s);
        mbar_arrive(empty_k);
        float alpha[2];
        mask_scores(s, qt, k_tiles, k_seq, k_pos, kt, tk, rs, rp, tc, window, cap_in, cap_out);
        online_softmax(s, m, l, alpha, multiplier);
        unsigned p[2][BK / 4];
        to_operand(s, p[0]);
        // Tile n (key tile kt, stage n & 1) has its P in `cur`: a turn issues the next tile's S and then this tile's
        // PV; the next tile's softmax runs while PV does, its P going to `nxt`, and O is rescaled once PV is done.
        // Returns false at the last tile, whose PV is left to issue. Called with the two P buffers in turn, so that no
        // register an MMA in flight reads is written: a copy from one buffer to the other made ptxas serialise the
        // MMAs, and one buffer packed after PV was slower.
        int n = 0;
        auto step = [&](unsigned (&cur)[BK / 4], unsigned (&nxt)[BK / 4]) {
            const int st = n & 1, nk = st ^ 1;
            const int next = next_visible_key_tile(k_tiles, qt, kt + 1, key_tiles, tk, window);
            if (next >= key_tiles) return false;
            mbar_wait(full_k + 8 * nk, ((n + 1) >> 1) & 1);
            mbar_wait(full_v + 8 * st, (n >> 1) & 1);
            named_sync(TURN_BARRIER + wg);
            wgmma_fence();
            issue_scores(s, sq, sk + nk * 2 * PANEL(BK), wg);
            wgmma_commit();
            issue_values(o, cur, sv + st * 2 * PANEL(BK));
            wgmma_commit();
            named_arrive(TURN_BARRIER + (wg ^ 1));
            wgmma_wait<1>();
            settled(s);
            mbar_arrive(empty_k + 8 * nk);
            mask_scores(s, qt, k_tiles, k_seq, k_pos, next, tk, rs, rp, tc, window, cap_in, cap_out);
            const bool grew = online_softmax(s, m, l, alpha, multiplier);
            to_operand(s, nxt);
            wgmma_wait<0>();
            settled(o);
            held(cur);
            mbar_arrive(empty_v + 8 * st);
            if (__any_sync(0xffffffffu, grew)) rescale(o, alpha);
            kt = next;
            n++;
            return true;
        };
        while (step(p[0], p[1]) && step(p[1], p[0])) {}
        // The last tile's PV.
        auto finish = [&](unsigned (&last)[BK / 4]) {
            const int st = n & 1;
            mbar_wait(full_v + 8 * st, (n >> 1) & 1);
            named_sync(TURN_BARRIER + wg);
            wgmma_fence();
            issue_values(o, last, sv + st * 2 * PANEL(BK));
            wgmma_commit();
            named_arrive(TURN_BARRIER + (wg ^ 1));
            wgmma_wait<0>();
            settled(o);
            held(last);
            mbar_arrive(empty_v + 8 * st);
        };
        // (Not p[n & 1]: indexing by a variable would put both buffers in local memory.)
        if (n & 1) finish(p[1]); else finish(p[0]);
    }
    if (wg == 0) named_sync(TURN_BARRIER); // warpgroup 1's last arrival

    const float ln2 = 0.6931471805599453f;
    #pragma unroll
    for (int half = 0; half < 2; half++) {
        const int r = q0 + row0 + half * 8;
        const float total = quad_sum(l[half]);
        if (r >= tq) continue;
        const float inv = total > 0.f ? 1.f / total : 0.f;
        #pragma unroll
        for (int i = 0; i < D / 8; i++)
            *reinterpret_cast<unsigned*>(out + r * q_stride + h * D + i * 8 + tc * 2) = pack2(o[4 * i + 2 * half] * inv, o[4 * i + 2 * half + 1] * inv);
        if (tc == 0) lse[(long)r * heads + h] = total > 0.f ? (m[half] + log2f(total)) * ln2 : -INFINITY;
    }
}
