// What each query row of a decode launch reads, passed by value (CudaBackend.Decode.cs fills its twin,
// DecodeRowsArgument): row r's keys and values (a cache [keys, kv heads, D], bf16) and the range [start[r],
// start[r] + count[r]) of them it sees. The rows of one launch may read different caches: a decode step's
// sequences each read their own where it is, in one launch. KernelCompiler puts this file in place of its #include
// line; bf16 is defined before it.
#define DECODE_MAX_ROWS 16
struct DecodeRows {
    const bf16* k[DECODE_MAX_ROWS];
    const bf16* v[DECODE_MAX_ROWS];
    int start[DECODE_MAX_ROWS];
    int count[DECODE_MAX_ROWS];
};
