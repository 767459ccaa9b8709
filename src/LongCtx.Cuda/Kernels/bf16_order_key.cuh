// Rows of bf16 logits as Kernels/draw_tokens.cu and token_logprobs.cu read them: keys that order as the values do, and
// a row read 16 bytes (8 entries, a "chunk") a load, so that a thread has several loads in flight and a pass over a
// 256 KB row is bound by memory, not by the latency of one 2-byte load after another.

// A 16-bit key that orders as the bf16 values do (TokenPicker.OrderKey's order), judged on the bits so fast math
// cannot flush denormals: NaN is 0, below every number (−inf is 0x80); −0 and +0 are both 0x8000. Only the low 16
// bits of b are read.
__device__ __forceinline__ unsigned key_of(unsigned b) {
    const unsigned magnitude = b & 0x7fffu;
    if (magnitude > 0x7f80u) return 0u;
    return (b & 0x8000u) ? 0x8000u - magnitude : 0x8000u + magnitude;
}

// The bf16 bits of a key: a number's own (+0 for 0x8000), a NaN for 0.
__device__ __forceinline__ unsigned bits_of(unsigned key) {
    if (key == 0u) return 0x7fffu;
    return key >= 0x8000u ? key - 0x8000u : (0x8000u - key) | 0x8000u;
}

// The bf16 value of the low 16 bits of b.
__device__ __forceinline__ float value_of(unsigned b) { return __uint_as_float(b << 16); }

// Both halves' maxima at once; a NaN loses to a number, and subnormals are kept (bf16 max has no flush to zero).
__device__ __forceinline__ unsigned max_bf16x2(unsigned a, unsigned b) {
    unsigned d;
    asm("max.bf16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
    return d;
}

// The key of a chunk's largest entry (0: NaN only): three bf16x2 maxima and one key_of rather than eight key_of, so
// that passes skip cheaply the chunks with nothing at or above their window.
__device__ __forceinline__ unsigned max_key_of(uint4 v) {
    const unsigned m = max_bf16x2(max_bf16x2(v.x, v.y), max_bf16x2(v.z, v.w));
    return key_of(max_bf16x2(m, m >> 16));
}

// Calls f(slot, bits) for the 8 entries of a chunk, in vocabulary order.
template <class F> __device__ __forceinline__ void for_each_entry(uint4 v, F&& f) {
    const unsigned words[4] = {v.x, v.y, v.z, v.w};
    #pragma unroll
    for (int i = 0; i < 4; i++) {
        f(2 * i, words[i] & 0xffffu);
        f(2 * i + 1, words[i] >> 16);
    }
}

constexpr unsigned NAN_BITS = 0x7fffu, NAN_PAIR = 0x7fff7fffu; // what a chunk holds outside its row

// A row of n entries seen as chunks on the 16-byte grid: chunk c holds entries 8c − skew ... 8c − skew + 7, where
// skew (0-7) is how far the row starts past a 16-byte boundary (row r of an [rows, n] tensor starts at r · n · 2
// bytes). Entries outside the row read as NaN, which no window holds and no maximum picks.
struct Row {
    const unsigned short* x;
    int n, skew, chunks;

    __device__ Row(const unsigned short* x, int n)
        : x(x), n(n), skew((int)((reinterpret_cast<size_t>(x) >> 1) & 7u)), chunks((n + skew + 7) >> 3) {}

    __device__ int index(int chunk, int slot) const { return 8 * chunk - skew + slot; }

    // Whether every entry of chunk c is in the row (all but the first and the last may be partly outside).
    __device__ bool whole(int c) const { return 8 * c - skew >= 0 && 8 * c - skew + 8 <= n; }

    __device__ bool holds(int chunk, int slot) const { return (unsigned)index(chunk, slot) < (unsigned)n; }

    __device__ uint4 chunk(int c) const {
        const int first = 8 * c - skew;
        if (whole(c)) return *reinterpret_cast<const uint4*>(x + first);
        unsigned words[4]; // the row's first or last chunk, partly outside it: entry by entry
        #pragma unroll
        for (int i = 0; i < 4; i++) words[i] = entry(first + 2 * i) | entry(first + 2 * i + 1) << 16;
        return make_uint4(words[0], words[1], words[2], words[3]);
    }

    __device__ unsigned entry(int i) const { return (unsigned)i < (unsigned)n ? x[i] : NAN_BITS; }
};

// How many chunk loads a thread keeps in flight: 4 × 16 bytes × 1024 threads = 64 KB an SM, enough to cover the
// latency of L2 at the bandwidth one SM can draw.
constexpr int IN_FLIGHT = 4;

// Calls f(c, chunk c) for c = first, first + stride, ... below end, in that order, the loads of IN_FLIGHT chunks
// issued before any is used.
template <class F> __device__ __forceinline__ void for_each_chunk(const Row& row, int first, int stride, int end, F&& f) {
    for (int c = first; c < end; c += IN_FLIGHT * stride) {
        uint4 v[IN_FLIGHT];
        #pragma unroll
        for (int u = 0; u < IN_FLIGHT; u++) v[u] = c + u * stride < end ? row.chunk(c + u * stride) : make_uint4(NAN_PAIR, NAN_PAIR, NAN_PAIR, NAN_PAIR);
        #pragma unroll
        for (int u = 0; u < IN_FLIGHT; u++)
            if (c + u * stride < end) f(c + u * stride, v[u]);
    }
}

// A warp's contiguous run of a row's chunks, [begin, end): the warps' runs follow one another in warp order, so what
// a warp meets in order comes before all the next warp meets.
struct Segment {
    int begin, end;

    __device__ Segment(const Row& row, int warp, int threads) {
        const int steps = (row.chunks + threads - 1) / threads;
        begin = min(row.chunks, warp * steps * 32);
        end = min(row.chunks, begin + steps * 32);
    }
};

// Walks a warp's segment 32 chunks a step (lane l takes the step's chunk l), IN_FLIGHT steps loaded at once. f(c, v)
// runs on every lane for every step, so it may shuffle; v is all NaN where c is past the segment. The walk stops
// when f returns false (it must, warp-uniformly).
template <class F> __device__ __forceinline__ void walk_segment(const Row& row, Segment segment, int lane, F&& f) {
    for (int step = segment.begin; step < segment.end; step += IN_FLIGHT * 32) {
        uint4 v[IN_FLIGHT];
        #pragma unroll
        for (int u = 0; u < IN_FLIGHT; u++) {
            const int c = step + u * 32 + lane;
            v[u] = c < segment.end ? row.chunk(c) : make_uint4(NAN_PAIR, NAN_PAIR, NAN_PAIR, NAN_PAIR);
        }
        #pragma unroll
        for (int u = 0; u < IN_FLIGHT; u++)
            if (!f(step + u * 32 + lane, v[u])) return;
    }
}

// Inclusive prefix sum over a block of 1024 threads; totals holds 32 entries, and after the call totals[w] is the
// sum through warp w (totals[31]: the block's).
__device__ __forceinline__ unsigned long long block_scan(unsigned long long v, unsigned long long* totals) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    #pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const unsigned long long u = __shfl_up_sync(0xffffffffu, v, o);
        if (lane >= o) v += u;
    }
    if (lane == 31) totals[warp] = v;
    __syncthreads();
    if (warp == 0) {
        unsigned long long t = totals[lane];
        #pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const unsigned long long u = __shfl_up_sync(0xffffffffu, t, o);
            if (lane >= o) t += u;
        }
        totals[lane] = t;
    }
    __syncthreads();
    return v + (warp > 0 ? totals[warp - 1] : 0ull);
}

// Radix selection of a cut, shared by both kernels: the largest key c in a window [lo, hi] where the weight of the
// keys from c up to hi reaches a target (where none does: lo), over BINS bins of the window a pass, so one pass when
// the window spans at most BINS keys (the kernels start theirs at a bound near the top) and two when it is wider
// (16-bit keys: 12 bits, then 4). Weights are integers, so every sum is exact in any order; a bin's weight is kept
// in two 32-bit words because a 64-bit atomic add to shared memory is a compare-and-swap loop (ATOMS.CAST.SPIN.64),
// which contention makes slow.
constexpr int BINS = 4096, BINS_PER_THREAD = BINS / 1024; // blocks of 1024 threads, as block_scan

struct Selection {
    unsigned low[BINS], high[BINS];   // each bin's weight: its low 32 bits and the rest (add_to_bin)
    unsigned long long totals[32];    // block_scan's
    unsigned long long chosen_above;  // choose_bin's answer: the weight of the bins above the chosen one,
    unsigned chosen;                  // and that bin
};

__device__ __forceinline__ void add_to_bin(Selection& s, unsigned bin, unsigned long long w) {
    const unsigned low = (unsigned)w, high = (unsigned)(w >> 32);
    const unsigned before = atomicAdd(&s.low[bin], low);
    const unsigned carry = before + low < low ? 1u : 0u; // the low word wrapped: its 2^32 goes to the high one
    if (high + carry != 0u) atomicAdd(&s.high[bin], high + carry);
}

// The smallest shift that puts the keys lo ... hi into BINS bins.
__device__ __forceinline__ int shift_for(unsigned lo, unsigned hi) {
    int shift = 0;
    while (((hi - lo) >> shift) >= (unsigned)BINS) shift++;
    return shift;
}

__device__ __forceinline__ void clear_bins(Selection& s) {
    for (int i = threadIdx.x; i < BINS; i += blockDim.x) s.low[i] = s.high[i] = 0u;
}

// From the highest bin down, the bin where the weight first reaches remaining (which is at least 1; bin 0 if none
// does), and remaining less the weight of the bins above it: a block-wide prefix sum from the top, thread 0 taking
// the highest BINS_PER_THREAD bins, then the one thread whose bins it crosses in walks them.
__device__ __forceinline__ unsigned choose_bin(Selection& s, unsigned long long& remaining) {
    const int top = BINS - 1 - BINS_PER_THREAD * (int)threadIdx.x; // this thread's highest bin
    unsigned long long weights[BINS_PER_THREAD], mine = 0ull;
    #pragma unroll
    for (int i = 0; i < BINS_PER_THREAD; i++) {
        weights[i] = (unsigned long long)s.high[top - i] << 32 | s.low[top - i];
        mine += weights[i];
    }
    if (threadIdx.x == 0) { s.chosen = 0u; s.chosen_above = 0ull; } // where nothing reaches it; ordered by the scan's barriers
    const unsigned long long through = block_scan(mine, s.totals); // the weight of the bins from this thread's lowest up
    unsigned long long above = through - mine;
    if (above < remaining && through >= remaining) {
        int i = 0;
        #pragma unroll
        for (; i < BINS_PER_THREAD - 1 && above + weights[i] < remaining; i++) above += weights[i];
        s.chosen = (unsigned)(top - i);
        s.chosen_above = above;
    }
    __syncthreads();
    remaining -= s.chosen_above;
    return s.chosen;
}

// The cut in [lo, hi] for remaining (at least 1), which becomes what the keys equal to the cut must still reach
// (the weight above the cut taken away); histogram(lo, hi, shift) adds the weight of every entry whose key is in
// [lo, hi] to bin (key − lo) >> shift.
template <class Histogram>
__device__ __forceinline__ unsigned cut_of(unsigned lo, unsigned hi, unsigned long long& remaining, Selection& s, Histogram&& histogram) {
    for (;;) {
        const int shift = shift_for(lo, hi);
        clear_bins(s);
        __syncthreads();
        histogram(lo, hi, shift);
        __syncthreads();
        lo += choose_bin(s, remaining) << shift;
        if (shift == 0) return lo;
        hi = min(hi, lo + (1u << shift) - 1u);
    }
}
