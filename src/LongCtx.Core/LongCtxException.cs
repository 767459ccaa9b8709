namespace LongCtx;

/// <summary>
/// An error the user can act on: missing file, wrong config, bad option, too long a prompt. The message is
/// one line that names the thing and what to do; the CLI prints it and exits non-zero.
/// </summary>
public class LongCtxException(string message, Exception? inner = null) : Exception(message, inner);
