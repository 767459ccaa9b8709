// The next token of each row of bf16 logits [rows, n] for its draw (CudaBackend.DrawTokens): the same algorithm as
// the host's TokenPicker.Pick, so only one int a row comes back. One block a row, reading it 16 bytes a load with
// several loads in flight (Kernels/bf16_order_key.cuh), so that a pass over a 256 KB row costs a few µs:
// 1. the largest logit and its first index (greedy, or top-k 1, stops here: Sampler.ArgMax's token), from each
//    chunk's maximum (one bf16x2 max per 4 bytes); each thread also keeps its own largest key;
// 2. top-k: the cut, the k-th largest key. The threads' largest keys are distinct entries, so the k-th largest of
//    them bounds the cut from below; the radix selection (bf16_order_key.cuh) then counts only the keys from that
//    bound up to the maximum, which are few, so the histogram sees few atomics and one pass usually settles it;
// 3. weights e^((x − max)/T) = 2^((x − max) · log2_scale) as integers (2^40 for the largest), so sums are exact in
//    any order; top-p: the total weight of the keys at or above the top-k cut (a pass of sums in registers, no
//    atomics), then the cut where, from the highest key down, their weight first reaches ceil(top_p · total), by
//    the same radix selection from a bound: the highest key where the threads' largest keys alone reach it;
// 4. the token where u · (the kept weight) falls, the kept tokens end to end in vocabulary order: each warp sums a
//    contiguous segment of chunks, a block-wide prefix sum of the warps' sums says which warp holds it, and that
//    warp walks its segment again, a prefix sum over its lanes a step.
// Passes after the first skip every chunk whose maximum is below their window, so with a model's logits they cost
// little beyond reading the row; only sums over every entry (top-p without top-k, and the draw at a temperature
// alone) compute a weight per entry.
#include "pdl.cuh"
#include "bf16_order_key.cuh"

constexpr int THREADS = 1024, WARPS = THREADS / 32;
constexpr int MAX_ROWS = 32;
constexpr float WEIGHT_OF_MAX = 1099511627776.f; // 2^40, TokenPicker.WeightOfMax

static_assert(WARPS == 32 && BINS_PER_THREAD * THREADS == BINS, "block_scan and choose_bin take 32 warps");

// CudaBackend's TokenDrawsArgument, passed by value: row r's uniform number, log2(e)/T, top-p and top-k (1: greedy).
struct TokenDraws {
    double u[MAX_ROWS];
    float log2_scale[MAX_ROWS];
    float top_p[MAX_ROWS];
    int top_k[MAX_ROWS];
    int rows;
};

// Computed whatever the key, the largest's then selected, so that a chunk's eight weights run without branches.
__device__ __forceinline__ unsigned long long weight_of(unsigned b, unsigned key, unsigned max_key, float max, float scale) {
    const unsigned long long w = __float2ull_rz(exp2f((value_of(b) - max) * scale) * WEIGHT_OF_MAX);
    return key == max_key ? (unsigned long long)WEIGHT_OF_MAX : w;
}

// All ones where key is kept (at or above cut), else 0: a weight masked with it, rather than selected by key, keeps
// the compiler from branching around each entry's exp2 (a convergence barrier an entry).
__device__ __forceinline__ unsigned long long kept_mask(unsigned key, unsigned cut) { return 0ull - (unsigned long long)(key >= cut); }

struct Shared {
    Selection selection;
    unsigned maxima[THREADS];  // each thread's largest key (0: NaN only): the bounds of the cuts
    unsigned warp_max[WARPS];
    int first;                 // the largest logit's first index
};

extern "C" __global__ void __launch_bounds__(THREADS) draw_tokens(const TokenDraws draws, const unsigned short* __restrict__ logits,
                                                                  int* __restrict__ tokens, int n) {
    __shared__ Shared s;
    wait_for_previous_grid(); // launched as a dependent (Kernels/pdl.cuh)
    let_next_grid_start();
    const int row_index = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const Row row(logits + (long)row_index * n, n);

    // 1. The largest key: each thread's, with the first of its chunks that holds it, then the block's, whose first
    // index is the earliest the holders find in their chunks.
    unsigned best = 0u;
    int best_chunk = 0;
    for_each_chunk(row, threadIdx.x, THREADS, row.chunks, [&](int c, uint4 v) {
        const unsigned key = max_key_of(v);
        if (key > best) { best = key; best_chunk = c; }
    });
    s.maxima[threadIdx.x] = best;
    const unsigned warp_best = __reduce_max_sync(0xffffffffu, best);
    if (lane == 0) s.warp_max[warp] = warp_best;
    if (threadIdx.x == 0) s.first = n;
    __syncthreads();
    const unsigned max_key = __reduce_max_sync(0xffffffffu, s.warp_max[lane]);
    if (max_key != 0u && best == max_key) {
        bool found = false;
        for_each_entry(row.chunk(best_chunk), [&](int slot, unsigned b) {
            if (!found && key_of(b) == max_key) { atomicMin(&s.first, row.index(best_chunk, slot)); found = true; }
        });
    }
    __syncthreads();
    const int k = draws.top_k[row_index];
    if (max_key == 0u || k == 1) {
        if (threadIdx.x == 0) tokens[row_index] = max_key == 0u ? n - 1 : s.first; // NaN only: Sampler.ArgMax's answer
        return;
    }
    const float max = value_of(row.x[s.first]), scale = draws.log2_scale[row_index];

    // Entries of the row to visit(bits, key): every entry of the chunks that reach lo, so the visitor tests the key
    // itself (a select, not a branch); the threads' largest keys likewise.
    const auto row_entries = [&](unsigned lo, auto&& visit) {
        for_each_chunk(row, threadIdx.x, THREADS, row.chunks, [&](int, uint4 v) {
            if (max_key_of(v) >= lo) for_each_entry(v, [&](int, unsigned b) { visit(b, key_of(b)); });
        });
    };
    const auto maxima = [&](unsigned, auto&& visit) {
        const unsigned key = s.maxima[threadIdx.x];
        visit(bits_of(key), key);
    };
    const auto counted = [](unsigned, unsigned) { return 1ull; };
    const auto weighed = [&](unsigned b, unsigned key) { return weight_of(b, key, max_key, max, scale); };
    // The cut for target over entries: from a bound found among the threads' largest keys (still lo where they do
    // not reach target), then over the row. Every key at or above the bound is in the window, so target stands.
    const auto cut_over_row = [&](unsigned lo, unsigned long long target, auto&& weight) {
        const auto histogram_of = [&](auto&& entries) {
            return [&](unsigned from, unsigned to, int shift) {
                entries(from, [&](unsigned b, unsigned key) {
                    const unsigned long long w = weight(b, key);
                    if (key >= from && key <= to && w != 0ull) add_to_bin(s.selection, (key - from) >> shift, w);
                });
            };
        };
        unsigned long long remaining = target;
        const unsigned bound = cut_of(lo, max_key, remaining, s.selection, histogram_of(maxima));
        remaining = target;
        return cut_of(bound, max_key, remaining, s.selection, histogram_of(row_entries));
    };

    // 2-3. The cut: top-k by count (k at least the numbers keeps them all: the count never reaches k, or reaches it
    // at the lowest number), then top-p by weight.
    unsigned cut = 1u;
    if (k > 0) cut = cut_over_row(1u, (unsigned long long)k, counted);
    if (draws.top_p[row_index] < 1.f) {
        unsigned long long mine = 0ull;
        row_entries(cut, [&](unsigned b, unsigned key) { mine += weighed(b, key) & kept_mask(key, cut); });
        block_scan(mine, s.selection.totals);
        const unsigned long long total = s.selection.totals[WARPS - 1];
        cut = cut_over_row(cut, (unsigned long long)ceil((double)draws.top_p[row_index] * (double)total), weighed);
    }

    // 4. The token where u · (kept weight) falls. Warp w's segment: chunks w · steps · 32 on, 32 (a step) at a time.
    const auto chunk_weight = [&](uint4 v) {
        unsigned long long sum = 0ull;
        if (max_key_of(v) >= cut)
            for_each_entry(v, [&](int, unsigned b) {
                const unsigned key = key_of(b);
                sum += weighed(b, key) & kept_mask(key, cut);
            });
        return sum;
    };
    const Segment segment(row, warp, THREADS);
    unsigned long long mine = 0ull;
    for_each_chunk(row, segment.begin + lane, 32, segment.end, [&](int, uint4 v) { mine += chunk_weight(v); });
    block_scan(mine, s.selection.totals);
    const unsigned long long before = warp > 0 ? s.selection.totals[warp - 1] : 0ull, kept = s.selection.totals[WARPS - 1];
    unsigned long long target = (unsigned long long)(draws.u[row_index] * (double)kept);
    if (target >= kept) target = kept - 1;
    if (target < before || target >= s.selection.totals[warp]) return; // warp-uniform: another warp holds it
    unsigned long long passed = before; // the kept weight before the current step
    walk_segment(row, segment, lane, [&](int c, uint4 v) {
        const unsigned long long w = chunk_weight(v);
        unsigned long long through = w; // the step's weight through this lane
        #pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const unsigned long long t = __shfl_up_sync(0xffffffffu, through, o);
            if (lane >= o) through += t;
        }
        const unsigned long long step_weight = __shfl_sync(0xffffffffu, through, 31);
        if (target >= passed + step_weight) {
            passed += step_weight;
            return true;
        }
        // Warp-uniform: this step holds it, in the lane where it falls.
        if (target >= passed + through - w && target < passed + through) {
            unsigned long long sum = passed + through - w;
            bool found = false;
            for_each_entry(v, [&](int slot, unsigned b) {
                const unsigned key = key_of(b);
                if (!found && key >= cut && (sum += weighed(b, key)) > target) { tokens[row_index] = row.index(c, slot); found = true; }
            });
        }
        return false;
    });
}
