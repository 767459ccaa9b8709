namespace LongCtx.Sampling;

/// <summary>
/// Picks a row's next token for a <see cref="TokenDraw"/>, the way Kernels/draw_tokens.cu does on the GPU, so a
/// seed draws the same tokens on either backend (up to the last bits of exp2 on the two):
/// <list type="number">
/// <item>top-k: the tokens whose logit is at least the k-th largest (ties at the cut kept, as Hugging Face's
/// TopKLogitsWarper keeps them); greedy is top-k 1, and picks <see cref="Sampler.ArgMax"/>'s token;</item>
/// <item>weights e^((x − max) / T) as integers, 2^40 for the largest logit, so every sum is exact and the same in
/// any order (the GPU adds them with atomics); NaN weighs nothing;</item>
/// <item>top-p: of those, the fewest most likely whose weight reaches p of theirs (ties at the cut kept);</item>
/// <item>the token where U · (their weight) falls, the kept tokens laid end to end in vocabulary order.</item>
/// </list>
/// The cuts are found by radix selection on keys that order as the floats do, never by sorting the vocabulary.
/// </summary>
public static class TokenPicker
{
    /// <summary>The integer weight of the largest logit.</summary>
    public const float WeightOfMax = 1099511627776f; // 2^40: a vocabulary of up to 2^24 entries sums below 2^64

    /// <summary>
    /// A draw on the host: its adjustment applied to a copy of the row, then the greedy token (<see cref="Sampler.ArgMax"/>)
    /// or <see cref="Pick"/>'s.
    /// </summary>
    public static int Draw(ReadOnlySpan<float> logits, TokenDraw draw)
    {
        if (draw.Adjust is { } adjust)
        {
            var adjusted = logits.ToArray();
            adjust.ApplyTo(adjusted);
            logits = adjusted;
        }
        return draw.IsGreedy ? Sampler.ArgMax(logits) : Pick(logits, draw);
    }

    /// <summary>The token <paramref name="draw"/> picks from the row as it is (its adjustment is <see cref="Draw"/>'s to apply).</summary>
    public static int Pick(ReadOnlySpan<float> logits, TokenDraw draw)
    {
        int n = logits.Length;
        if (n == 0) return 0;
        var keys = new uint[n];
        uint maxKey = 0;
        int first = -1, numbers = 0;
        for (int i = 0; i < n; i++)
        {
            uint key = keys[i] = OrderKey(logits[i]);
            if (key == 0) continue;
            numbers++;
            if (key > maxKey) { maxKey = key; first = i; }
        }
        if (first < 0) return n - 1; // NaN only: Sampler.ArgMax's answer
        int k = draw.EffectiveTopK;
        if (k == 1) return first;
        uint cut = k > 0 && k < numbers ? Cut(keys, _ => 1, (ulong)k) : 1u;
        float max = logits[first], scale = draw.Log2Scale;
        var weights = new ulong[n];
        ulong total = 0;
        for (int i = 0; i < n; i++)
            total += weights[i] = keys[i] < cut ? 0 : keys[i] == maxKey ? (ulong)WeightOfMax : (ulong)(float.Exp2((logits[i] - max) * scale) * WeightOfMax);
        if (draw.TopP < 1f)
        {
            cut = Cut(keys, i => weights[i], (ulong)Math.Ceiling(draw.TopP * (double)total));
            total = 0;
            for (int i = 0; i < n; i++) total += weights[i] = keys[i] < cut ? 0 : weights[i];
        }
        ulong target = Math.Min((ulong)(draw.U * total), total - 1), sum = 0;
        for (int i = 0; i < n; i++)
            if ((sum += weights[i]) > target) return i;
        return first; // not reached: the weights sum to total
    }

    /// <summary>
    /// The key where the weight of the keys at or above it, from the highest down, first reaches target (which the
    /// total weight reaches): four radix passes of 8 bits, as the GPU makes two on 16-bit bf16 keys.
    /// </summary>
    private static uint Cut(uint[] keys, Func<int, ulong> weight, ulong target)
    {
        var histogram = new ulong[256];
        uint prefix = 0;
        ulong remaining = target;
        for (int shift = 24; shift >= 0; shift -= 8)
        {
            Array.Clear(histogram);
            uint high = shift == 24 ? 0u : 0xffffffffu << (shift + 8);
            for (int i = 0; i < keys.Length; i++)
                if ((keys[i] & high) == prefix) histogram[(keys[i] >> shift) & 255] += weight(i);
            int digit = 255;
            for (; digit > 0 && histogram[digit] < remaining; digit--) remaining -= histogram[digit];
            prefix |= (uint)digit << shift;
        }
        return prefix;
    }

    /// <summary>
    /// A key that orders as the floats do, judged on the bits (denormals stay apart from 0, as on the GPU): −0 is +0,
    /// −inf is the lowest number, and NaN is 0, below every number.
    /// </summary>
    public static uint OrderKey(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        if ((bits & 0x7fffffffu) > 0x7f800000u) return 0u;
        if (bits == 0x80000000u) bits = 0u;
        return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
    }
}
