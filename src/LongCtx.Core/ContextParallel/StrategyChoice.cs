namespace LongCtx.ContextParallel;

/// <summary>Measured or configured rates of one rank: attention compute C (FLOP/s) and ring link bandwidth BW (bytes/s).</summary>
public sealed record HardwareRates(double AttentionFlopsPerSecond, double LinkBytesPerSecond)
{
    public override string ToString() => $"C={AttentionFlopsPerSecond / 1e12:0.###} TFLOP/s, BW={LinkBytesPerSecond / 1e9:0.###} GB/s";
}

/// <summary>The inputs of the pass-KV / pass-Q decision, the two thresholds and the outcome, for logs and --json.</summary>
public sealed record StrategyChoice(
    string Strategy, long NewTokens, long CachedTokens, int Ranks, int Heads, int KvHeads, int BytesPerElement,
    HardwareRates Rates, double HideThresholdTokens, double MissRate, double MissRateThreshold)
{
    public override string ToString() =>
        $"{Strategy}: T={NewTokens} P={CachedTokens} N={Ranks} NH={Heads} NKV={KvHeads} e={BytesPerElement} {Rates}; " +
        $"pass-KV hides if T >= {HideThresholdTokens:0.#}; miss rate {MissRate:0.####} vs threshold {MissRateThreshold:0.####}";

    /// <summary>
    /// The paper's heuristic (Algorithm 1, partial prefill): choose pass-KV when its transfer hides behind
    /// the step's attention, T ≥ N·C·NKV·e / (2·NH·BW), or when the KV cache miss rate is high enough that
    /// it moves fewer bytes than pass-Q, T/(T+P) ≥ 2·NKV/NH − 4·T·BW/(N·C·e); otherwise pass-Q.
    /// The first test comes from comparing one ring step's transfer, 2·(T+P)·NKV·D·e/N bytes, with its
    /// attention, 4·T·(T+P)·NH·D/N² FLOPs; D cancels. With one rank nothing travels: pass-KV.
    /// </summary>
    public static StrategyChoice Decide(long newTokens, long cachedTokens, int ranks, int heads, int kvHeads, int bytesPerElement, HardwareRates rates)
    {
        double c = rates.AttentionFlopsPerSecond, bw = rates.LinkBytesPerSecond, t = newTokens, e = bytesPerElement;
        double hide = ranks * c * kvHeads * e / (2.0 * heads * bw);
        double miss = newTokens + cachedTokens == 0 ? 1 : t / (newTokens + cachedTokens);
        double missThreshold = 2.0 * kvHeads / heads - 4.0 * t * bw / (ranks * c * e);
        bool passKv = ranks == 1 || t >= hide || miss >= missThreshold;
        return new StrategyChoice(passKv ? "pass-kv" : "pass-q", newTokens, cachedTokens, ranks, heads, kvHeads, bytesPerElement,
            rates, hide, miss, missThreshold);
    }
}
