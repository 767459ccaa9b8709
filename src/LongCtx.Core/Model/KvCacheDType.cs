namespace LongCtx.Model;

/// <summary>What the KV cache holds (<see cref="Setting.KvCacheDtype"/>).</summary>
public enum KvCacheDType
{
    /// <summary>FP8 where the checkpoint has a kv_cache_scheme (with its scales), else the activation type.</summary>
    Auto,
    /// <summary>e4m3 codes with the checkpoint's k_scale / v_scale, or scale 1 where it has none.</summary>
    Fp8,
    /// <summary>The backend's activation type (bf16 on GPUs, float32 on the CPU), whatever the checkpoint says.</summary>
    Activation,
}

public static class KvCacheDTypes
{
    /// <summary>The setting's value: auto, fp8 (or fp8_e4m3), bf16 (or bfloat16).</summary>
    public static KvCacheDType Parse(string value) => value switch
    {
        "auto" => KvCacheDType.Auto,
        "fp8" or "fp8_e4m3" => KvCacheDType.Fp8,
        "bf16" or "bfloat16" => KvCacheDType.Activation,
        _ => throw new SettingException(Setting.KvCacheDtype, "is unknown: use auto, fp8 or bf16", value),
    };
}
