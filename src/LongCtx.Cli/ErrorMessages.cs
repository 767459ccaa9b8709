namespace LongCtx.Cli;

/// <summary>How the command line words the engine's errors: an error about a setting names the flag that sets it.</summary>
internal static class ErrorMessages
{
    public static string Of(LongCtxException e) => e switch
    {
        SettingException s when s.Value is null => $"{s.Problem} ({Flag(s.Setting)})",
        // A calibration file that cannot be used is written again on the machine it describes.
        SettingException { Setting: Setting.Calibration } s => $"{s.Naming(Flag(s.Setting))}; write one with longctx bench --calibrate FILE",
        SettingException s => s.Naming(Flag(s.Setting)),
        ContextLengthException => $"{e.Message}: shorten the prompt",
        _ => e.Message,
    };

    private static string Flag(Setting setting) => setting switch
    {
        Setting.Query => "--query, --query-file or --query-tokens",
        Setting.Logprobs => "--prompt-logprobs",
        _ => "--" + SettingException.NameOf(setting),
    };
}
