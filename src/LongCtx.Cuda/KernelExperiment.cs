namespace LongCtx.Cuda;

/// <summary>TEMPORARY (removed before merge): extra NVRTC defines for A/B runs of kernel variants on the GPU.</summary>
internal static class KernelExperiment
{
    public static readonly string[] Defines =
        (Environment.GetEnvironmentVariable("LONGCTX_KERNEL_DEFINES") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries);
}
