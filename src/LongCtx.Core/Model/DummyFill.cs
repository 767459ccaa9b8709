using LongCtx.Tensors;

namespace LongCtx.Model;

/// <summary>
/// Fills native memory with pseudo-random weights, fast and reproducibly. Values are an Irwin–Hall
/// approximation of N(0, std): the sum of four 16-bit uniforms from one xorshift64* draw, centred and scaled.
/// That is a few nanoseconds per value instead of Box–Muller's log/sqrt/cos, and for dummy weights only the
/// mean and spread matter. Work is split into fixed chunks, each seeded from (seed, tensor, chunk), so the
/// result does not depend on how many threads ran or in what order.
/// </summary>
internal static unsafe class DummyFill
{
    private const long ChunkElements = 1 << 20;
    // Sum of four uniforms on [0, 65535]: mean 4 * 32767.5, variance 4 * (65536^2 - 1) / 12.
    private const double SumMean = 4 * 32767.5;
    private static readonly double SumStd = Math.Sqrt(4 * (65536.0 * 65536.0 - 1) / 12);

    public static void Normal(nint data, long count, DType dtype, double std, ulong seed, int tensorIndex)
    {
        long chunks = (count + ChunkElements - 1) / ChunkElements;
        float scale = (float)(std / SumStd);
        System.Threading.Tasks.Parallel.For(0L, chunks, chunk =>
        {
            long start = chunk * ChunkElements, n = Math.Min(ChunkElements, count - start);
            ulong state = ChunkSeed(seed, tensorIndex, chunk);
            switch (dtype)
            {
                case DType.BF16: FillBf16((ushort*)data + start, n, scale, ref state); break;
                case DType.F16: FillF16((ushort*)data + start, n, scale, ref state); break;
                case DType.F32: FillF32((float*)data + start, n, scale, ref state); break;
                default: throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "dummy weights are BF16, F16 or F32");
            }
        });
    }

    public static void Constant(nint data, long count, DType dtype, float value)
    {
        switch (dtype)
        {
            case DType.BF16: new Span<ushort>((void*)data, checked((int)count)).Fill(ToBf16(value)); break;
            case DType.F16: new Span<ushort>((void*)data, checked((int)count)).Fill(BitConverter.HalfToUInt16Bits((Half)value)); break;
            case DType.F32: new Span<float>((void*)data, checked((int)count)).Fill(value); break;
            default: throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "dummy weights are BF16, F16 or F32");
        }
    }

    private static void FillBf16(ushort* dst, long n, float scale, ref ulong state)
    {
        ulong s = state;
        for (long i = 0; i < n; i++) dst[i] = ToBf16(Sample(ref s, scale));
        state = s;
    }

    private static void FillF16(ushort* dst, long n, float scale, ref ulong state)
    {
        ulong s = state;
        for (long i = 0; i < n; i++) dst[i] = BitConverter.HalfToUInt16Bits((Half)Sample(ref s, scale));
        state = s;
    }

    private static void FillF32(float* dst, long n, float scale, ref ulong state)
    {
        ulong s = state;
        for (long i = 0; i < n; i++) dst[i] = Sample(ref s, scale);
        state = s;
    }

    private static float Sample(ref ulong s, float scale)
    {
        // xorshift64*: a full-period 64-bit generator, good enough in its high bits for this.
        s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
        ulong r = s * 0x2545F4914F6CDD1DUL;
        long sum = (long)(r & 0xFFFF) + (long)((r >> 16) & 0xFFFF) + (long)((r >> 32) & 0xFFFF) + (long)(r >> 48);
        return (float)(sum - SumMean) * scale;
    }

    /// <summary>float → bf16 with round-to-nearest-even (values here are finite).</summary>
    private static ushort ToBf16(float v)
    {
        uint bits = BitConverter.SingleToUInt32Bits(v);
        return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1)) >> 16);
    }

    // SplitMix64 over the three indices: well-spread, never-zero starting states for xorshift.
    private static ulong ChunkSeed(ulong seed, int tensorIndex, long chunk)
    {
        ulong z = seed * 0x9E3779B97F4A7C15UL + (ulong)tensorIndex * 0xBF58476D1CE4E5B9UL + (ulong)chunk * 0x94D049BB133111EBUL + 0x632BE59BD9B4E019UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return z == 0 ? 0x9E3779B97F4A7C15UL : z;
    }
}
