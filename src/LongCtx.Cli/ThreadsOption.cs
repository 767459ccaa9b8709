using System.CommandLine;

namespace LongCtx.Cli;

/// <summary>--threads N: CPU threads in all, refused at parse time when below 1 so that a bad count fails before loading.</summary>
internal static class ThreadsOption
{
    public static Option<int?> Create()
    {
        var option = new Option<int?>("--threads") { Description = "CPU threads in all (default: all cores)" };
        option.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int?>() is < 1 and var threads) result.AddError($"--threads {threads} must be 1 or more (default: every core)");
        });
        return option;
    }
}
