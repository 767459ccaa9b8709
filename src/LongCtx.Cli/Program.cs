using System.CommandLine;
using LongCtx;
using LongCtx.Cli;

// Entry point of the `longctx` command. Every error a user can act on arrives as a LongCtxException and
// leaves as one line on stderr with a non-zero exit; parse errors likewise.
var root = new RootCommand("LongCtx: long-context LLM inference with context parallelism")
{
    GenerateCommand.Create(),
    ChatCommand.Create(),
    TokenizeCommand.Create(),
    BenchCommand.Create(),
    PlanCommand.Create(),
    EvalRetrievalCommand.Create(),
    MakeRetrievalPromptsCommand.Create(),
    BenchAttentionCommand.Create(),
    BenchGemmCommand.Create(),
    LaunchCommand.Create(),
    ServeCommand.Create(),
};

// In a multi-process group only rank 0 prints results; the others still report errors on stderr.
if (Environment.GetEnvironmentVariable("RANK") is { Length: > 0 } rankText && rankText != "0") Console.SetOut(TextWriter.Null);

var parsed = root.Parse(args);
if (parsed.Errors.Count > 0)
{
    Console.Error.WriteLine($"error: {parsed.Errors[0].Message} (see longctx --help)");
    return 2;
}
try
{
    // `serve` drains on SIGTERM and SIGINT itself (OpenAiServer, within --shutdown-timeout); System.CommandLine would
    // end the process 2 s after the signal, dropping the requests in flight.
    bool drains = parsed.CommandResult.Command.Name == "serve";
    return await parsed.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = drains ? null : TimeSpan.FromSeconds(2) });
}
catch (LongCtxException e)
{
    Console.Error.WriteLine($"error: {ErrorMessages.Of(e)}");
    return 1;
}
catch (Exception e) when (Environment.GetEnvironmentVariable("LONGCTX_DEBUG") is null)
{
    // A bug, not bad input: still one line; LONGCTX_DEBUG=1 shows the stack.
    Console.Error.WriteLine($"error: internal error ({e.GetType().Name}: {e.Message}); rerun with LONGCTX_DEBUG=1 for details");
    return 70;
}
