namespace LongCtx.ContextParallel;

/// <summary>The attention strategies a prefill can ask for: exact ones, and the approximate Star Attention and APB.</summary>
public static class StrategyNames
{
    public const string Dense = "dense", PassKv = "pass-kv", PassQ = "pass-q", Auto = "auto", Star = "star", Apb = "apb";
    public static readonly string[] Exact = [Dense, PassKv, PassQ, Auto];
    public static readonly string[] Approximate = [Star, Apb];
    public static readonly string[] All = [.. Exact, .. Approximate];

    public static bool IsApproximate(string name) => Approximate.Contains(name);

    public static string Validate(string name) => All.Contains(name)
        ? name
        : throw new SettingException(Setting.Strategy, $"is unknown: use one of {string.Join(", ", All)}", name);
}
