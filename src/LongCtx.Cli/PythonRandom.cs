namespace LongCtx.Cli;

/// <summary>
/// CPython's <c>random.Random</c> (3.11; the same since 3.2 for what is here): MT19937 seeded from an int by
/// init_by_array, and the methods bench/retrieval's Python uses, drawing from the generator exactly as CPython
/// does, so a seed gives the same numbers in both. Python ints are longs here.
/// </summary>
internal sealed class PythonRandom
{
    private const int N = 624, M = 397;
    private const uint MatrixA = 0x9908b0dfU, UpperMask = 0x80000000U, LowerMask = 0x7fffffffU;

    private readonly uint[] _mt = new uint[N];
    private int _index;

    /// <summary><c>random.Random(seed)</c>: the key is |seed| in 32-bit words, least significant first.</summary>
    public PythonRandom(long seed)
    {
        ulong magnitude = seed < 0 ? (ulong)-(seed + 1) + 1 : (ulong)seed;
        uint[] key = magnitude >> 32 == 0 ? [(uint)magnitude] : [(uint)magnitude, (uint)(magnitude >> 32)];
        InitByArray(key);
    }

    private void InitGenrand(uint s)
    {
        _mt[0] = s;
        for (int i = 1; i < N; i++) _mt[i] = 1812433253U * (_mt[i - 1] ^ (_mt[i - 1] >> 30)) + (uint)i;
        _index = N;
    }

    private void InitByArray(uint[] key)
    {
        InitGenrand(19650218U);
        int i = 1, j = 0;
        for (int k = Math.Max(N, key.Length); k > 0; k--)
        {
            _mt[i] = (_mt[i] ^ ((_mt[i - 1] ^ (_mt[i - 1] >> 30)) * 1664525U)) + key[j] + (uint)j;
            i++;
            j++;
            if (i >= N) { _mt[0] = _mt[N - 1]; i = 1; }
            if (j >= key.Length) j = 0;
        }
        for (int k = N - 1; k > 0; k--)
        {
            _mt[i] = (_mt[i] ^ ((_mt[i - 1] ^ (_mt[i - 1] >> 30)) * 1566083941U)) - (uint)i;
            i++;
            if (i >= N) { _mt[0] = _mt[N - 1]; i = 1; }
        }
        _mt[0] = 0x80000000U;
    }

    /// <summary>The generator's next 32-bit output (genrand_uint32).</summary>
    public uint NextUInt32()
    {
        if (_index >= N) Twist();
        uint y = _mt[_index++];
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c5680U;
        y ^= (y << 15) & 0xefc60000U;
        y ^= y >> 18;
        return y;
    }

    private void Twist()
    {
        for (int k = 0; k < N; k++)
        {
            uint y = (_mt[k] & UpperMask) | (_mt[(k + 1) % N] & LowerMask);
            _mt[k] = _mt[(k + M) % N] ^ (y >> 1) ^ ((y & 1) == 0 ? 0 : MatrixA);
        }
        _index = 0;
    }

    /// <summary><c>random()</c>: 53 random bits, from two outputs (27 and 26 bits), scaled into [0, 1).</summary>
    public double Random()
    {
        uint a = NextUInt32() >> 5, b = NextUInt32() >> 6;
        return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
    }

    /// <summary><c>getrandbits(k)</c> for k up to 64: one output per 32 bits, least significant word first, the last one
    /// cut to the bits left.</summary>
    public ulong GetRandBits(int k)
    {
        if (k is < 0 or > 64) throw new ArgumentOutOfRangeException(nameof(k), k, "0 to 64 bits");
        if (k <= 32) return k == 0 ? 0 : NextUInt32() >> (32 - k);
        ulong low = NextUInt32();
        return low | (ulong)(NextUInt32() >> (64 - k)) << 32;
    }

    /// <summary><c>_randbelow(n)</c>: getrandbits of n's bit length until it is below n.</summary>
    public long RandBelow(long n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), n, "must be positive");
        int k = 64 - (int)long.LeadingZeroCount(n);
        ulong r = GetRandBits(k);
        while (r >= (ulong)n) r = GetRandBits(k);
        return (long)r;
    }

    /// <summary><c>randrange(start, stop)</c>.</summary>
    public long RandRange(long start, long stop) =>
        stop > start ? start + RandBelow(stop - start) : throw new ArgumentException($"empty range for randrange() ({start}, {stop})");

    /// <summary><c>randint(a, b)</c>: b included.</summary>
    public long RandInt(long a, long b) => RandRange(a, b + 1);

    /// <summary><c>choice(seq)</c>.</summary>
    public T Choice<T>(IReadOnlyList<T> seq) =>
        seq.Count > 0 ? seq[(int)RandBelow(seq.Count)] : throw new ArgumentException("Cannot choose from an empty sequence");

    /// <summary><c>choices(population, k=k)</c> without weights: floor(random() * n) each, with replacement.</summary>
    public T[] Choices<T>(IReadOnlyList<T> population, int k)
    {
        double n = population.Count;
        var result = new T[k];
        for (int i = 0; i < k; i++) result[i] = population[(int)Math.Floor(Random() * n)];
        return result;
    }

    /// <summary>
    /// <c>sample(population, k)</c>: k distinct positions, in selection order. Like CPython, a partial shuffle of a
    /// copy of the population when that list is smaller than a set of k entries would be, else redraws against
    /// the positions already taken; the two draw differently, so the rule choosing them is CPython's too.
    /// </summary>
    public T[] Sample<T>(IReadOnlyList<T> population, int k)
    {
        int n = population.Count;
        if (k < 0 || k > n) throw new ArgumentException("Sample larger than population or is negative");
        var result = new T[k];
        double setSize = 21; // a small set's size less an empty list's, in CPython's accounting
        if (k > 5) setSize += Math.Pow(4, Math.Ceiling(Math.Log(k * 3.0) / Math.Log(4)));
        if (n <= setSize)
        {
            var pool = population.ToArray();
            for (int i = 0; i < k; i++)
            {
                int j = (int)RandBelow(n - i);
                result[i] = pool[j];
                pool[j] = pool[n - i - 1];
            }
        }
        else
        {
            var selected = new HashSet<int>();
            for (int i = 0; i < k; i++)
            {
                int j = (int)RandBelow(n);
                while (!selected.Add(j)) j = (int)RandBelow(n);
                result[i] = population[j];
            }
        }
        return result;
    }
}
