// Per row of bf16 logits [rows, n] (CudaBackend.Logprobs): the log probability of the row's token and its `top`
// most likely tokens, as the host's Engine.Logprobs.Of gives them, so only these figures come back. One block a
// row, three reads of it, 16 bytes a load with several loads in flight (Kernels/bf16_order_key.cuh):
// 1. the largest key, from each chunk's maximum (one bf16x2 max per 4 bytes); each thread also keeps its own;
// 2. Σ exp(x − max), each term added in double (the host adds float slices in double), and the cut (the top-th
//    largest key) by radix selection (bf16_order_key.cuh). The threads' largest keys are distinct entries, so the
//    top-th largest of them bounds the cut from below and the histogram counts only the keys from that bound up
//    to the maximum: a few dozen shared atomics a row, where counting every key took a __match_any_sync per key
//    to spare the atomics; one pass settles it unless those keys span more than 4096 (then a pass over the chosen
//    bin follows);
// 3. the entries above the cut (fewer than top), and the earliest equal to it up to top (ties go to the lower id):
//    each warp walks a contiguous segment, so its ties come in order. One thread sorts those few, best first.
// Passes 2 (beyond its sum) and 3 skip every chunk whose maximum is below the bound or the cut.
// Output: a row of 1 + 2 · top ints, so one download brings everything back: the token's logprob (float bits),
// the top ids, and their logprobs (float bits).
#include "pdl.cuh"
#include "bf16_order_key.cuh"

constexpr int THREADS = 1024, WARPS = THREADS / 32;
constexpr int MAX_TOP = 20; // Engine.Logprobs.MaxTop

static_assert(WARPS == 32 && BINS_PER_THREAD * THREADS == BINS, "block_scan and choose_bin take 32 warps");

// An entry packed so that descending order is by key, then by ascending id.
__device__ __forceinline__ unsigned long long entry_of(unsigned key, int i) {
    return ((unsigned long long)key << 32) | (0xffffffffu - (unsigned)i);
}

struct Shared {
    Selection selection;
    unsigned maxima[THREADS];                // each thread's largest key: the bound of the cut
    unsigned warp_max[WARPS];
    double warp_sum[WARPS];
    double lse;                              // the row's log Σ exp(x), from thread 0
    int above_count;
    unsigned long long above[MAX_TOP];       // the entries above the cut
    int equal[WARPS][MAX_TOP], equal_kept[WARPS]; // each warp's earliest entries equal to it
    unsigned long long chosen[MAX_TOP];
};

extern "C" __global__ void __launch_bounds__(THREADS) token_logprobs(const unsigned short* __restrict__ logits, const int* __restrict__ tokens,
                                                                     int* __restrict__ out, int n, int top) {
    __shared__ Shared s;
    wait_for_previous_grid(); // launched as a dependent (Kernels/pdl.cuh)
    let_next_grid_start();
    const int row_index = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5, count = min(top, n);
    const Row row(logits + (long)row_index * n, n);
    int* const figures = out + (long)row_index * (1 + 2 * top);
    if (threadIdx.x == 0) s.above_count = 0;

    // 1. The largest key, each thread's and the block's.
    unsigned best = 0u;
    for_each_chunk(row, threadIdx.x, THREADS, row.chunks, [&](int, uint4 v) { best = max(best, max_key_of(v)); });
    s.maxima[threadIdx.x] = best;
    const unsigned warp_best = __reduce_max_sync(0xffffffffu, best);
    if (lane == 0) s.warp_max[warp] = warp_best;
    __syncthreads();
    const unsigned max_key = __reduce_max_sync(0xffffffffu, s.warp_max[lane]);
    const float max = value_of(bits_of(max_key));

    // The bound: the count-th largest of the threads' largest keys (0, a NaN's, bounds every key).
    const auto counted = [&](auto&& entries) {
        return [&](unsigned lo, unsigned hi, int shift) {
            entries(lo, [&](unsigned key, bool holds) {
                if (holds && key >= lo && key <= hi) atomicAdd(&s.selection.low[(key - lo) >> shift], 1u);
            });
        };
    };
    unsigned long long remaining = (unsigned long long)count;
    const unsigned bound = count > 0 ? cut_of(0u, max_key, remaining, s.selection, counted([&](unsigned, auto&& visit) { visit(s.maxima[threadIdx.x], true); })) : 0u;

    // 2. Σ exp(x − max); the keys from the bound up in BINS bins. Only entries in the row count (Row::holds): the
    // cut may be NaN (key 0), what a chunk holds outside the row.
    const int shift = shift_for(bound, max_key);
    clear_bins(s.selection);
    __syncthreads();
    double sum = 0.0;
    for_each_chunk(row, threadIdx.x, THREADS, row.chunks, [&](int c, uint4 v) {
        const bool whole = row.whole(c);
        for_each_entry(v, [&](int slot, unsigned b) {
            if (whole || row.holds(c, slot)) sum += (double)__expf(value_of(b) - max);
        });
        if (count > 0 && max_key_of(v) >= bound)
            for_each_entry(v, [&](int slot, unsigned b) {
                const unsigned key = key_of(b);
                if (key >= bound && row.holds(c, slot)) atomicAdd(&s.selection.low[(key - bound) >> shift], 1u);
            });
    });
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0) s.warp_sum[warp] = sum;
    __syncthreads();
    if (threadIdx.x == 0) {
        sum = 0.0;
        for (int w = 0; w < WARPS; w++) sum += s.warp_sum[w];
        s.lse = (double)max + log(sum);
        figures[0] = __float_as_int((float)((double)value_of(row.x[tokens[row_index]]) - s.lse));
    }
    if (count == 0) return;
    remaining = (unsigned long long)count;
    unsigned cut = bound + (choose_bin(s.selection, remaining) << shift);
    if (shift > 0) {
        const auto row_entries = [&](unsigned lo, auto&& visit) {
            for_each_chunk(row, threadIdx.x, THREADS, row.chunks, [&](int c, uint4 v) {
                if (max_key_of(v) >= lo) for_each_entry(v, [&](int slot, unsigned b) { visit(key_of(b), row.holds(c, slot)); });
            });
        };
        cut = cut_of(cut, min(max_key, cut + (1u << shift) - 1u), remaining, s.selection, counted(row_entries));
    }

    // 3. Warp w walks chunks w · steps · 32 on, a step of 32 chunks at a time (IN_FLIGHT steps loaded at once), so its
    // entries equal to the cut come in order; the warps' segments follow one another, so the first `ties` of them
    // in warp order are the row's earliest.
    const unsigned ties = (unsigned)remaining;
    unsigned seen = 0u;
    const Segment segment(row, warp, THREADS);
    walk_segment(row, segment, lane, [&](int c, uint4 v) {
        unsigned equals = 0u; // the slots equal to the cut (past the segment: none, though the cut may be NaN)
        if (c < segment.end && max_key_of(v) >= cut)
            for_each_entry(v, [&](int slot, unsigned b) {
                if (!row.holds(c, slot)) return;
                const unsigned key = key_of(b);
                if (key > cut) s.above[atomicAdd(&s.above_count, 1)] = entry_of(key, row.index(c, slot));
                if (key == cut) equals |= 1u << slot;
            });
        if (!__any_sync(0xffffffffu, equals != 0u)) return true;
        const unsigned mine = __popc(equals);
        unsigned through = mine; // this step's ties through this lane
        #pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const unsigned t = __shfl_up_sync(0xffffffffu, through, o);
            if (lane >= o) through += t;
        }
        for (unsigned rank = seen + through - mine; equals != 0u && rank < ties; rank++, equals &= equals - 1u)
            s.equal[warp][rank] = row.index(c, __ffs(equals) - 1);
        seen += __shfl_sync(0xffffffffu, through, 31);
        return true;
    });
    if (lane == 0) s.equal_kept[warp] = min(seen, ties);
    __syncthreads();

    if (threadIdx.x == 0) {
        int kept = 0;
        for (int a = 0; a < s.above_count; a++) s.chosen[kept++] = s.above[a];
        for (int w = 0; w < WARPS && kept < count; w++)
            for (int j = 0; j < s.equal_kept[w] && kept < count; j++) s.chosen[kept++] = entry_of(cut, s.equal[w][j]);
        for (int j = 1; j < count; j++) {
            const unsigned long long e = s.chosen[j];
            int at = j;
            for (; at > 0 && s.chosen[at - 1] < e; at--) s.chosen[at] = s.chosen[at - 1];
            s.chosen[at] = e;
        }
    }
    __syncthreads();
    if (threadIdx.x < count) {
        const int id = (int)(0xffffffffu - (unsigned)s.chosen[threadIdx.x]);
        figures[1 + threadIdx.x] = id;
        figures[1 + top + threadIdx.x] = __float_as_int((float)((double)value_of(row.x[id]) - s.lse));
    }
}
