namespace LongCtx.Comm;

/// <summary>
/// This process's place in a multi-process group, read from the torchrun-style environment: RANK,
/// WORLD_SIZE, LOCAL_RANK (which local GPU), MASTER_ADDR and MASTER_PORT (where rank 0 runs the
/// rendezvous), and the job's id, which every rank presents at the rendezvous so that no other process can join:
/// LONGCTX_JOB_ID, else torchrun's TORCHELASTIC_RUN_ID (its --rdzv-id). One process per rank; `longctx launch`
/// sets these for processes on one machine, with a random id. LONGCTX_RENDEZVOUS_TIMEOUT (seconds, default 120)
/// bounds the wait for the other ranks: raise it when nodes are started by hand.
/// </summary>
public sealed record LaunchEnvironment(int Rank, int WorldSize, int LocalRank, string MasterAddress, int MasterPort, string JobId)
{
    public const string JobIdVariable = "LONGCTX_JOB_ID", TorchrunRunIdVariable = "TORCHELASTIC_RUN_ID";

    public TimeSpan RendezvousTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>Null when WORLD_SIZE is unset (a single-process run).</summary>
    public static LaunchEnvironment? FromEnvironment()
    {
        string? world = Environment.GetEnvironmentVariable("WORLD_SIZE");
        if (string.IsNullOrEmpty(world)) return null;
        int size = Int("WORLD_SIZE", world, min: 1);
        int rank = Int("RANK", Required("RANK"), min: 0);
        if (rank >= size) throw new LongCtxException($"RANK={rank} must be below WORLD_SIZE={size}");
        string? localText = Environment.GetEnvironmentVariable("LOCAL_RANK");
        int local = string.IsNullOrEmpty(localText) ? 0 : Int("LOCAL_RANK", localText, min: 0);
        int port = Int("MASTER_PORT", Required("MASTER_PORT"), min: 1);
        if (port > 65535) throw new LongCtxException($"MASTER_PORT={port} is not a TCP port");
        string job = Environment.GetEnvironmentVariable(JobIdVariable) is { Length: > 0 } id ? id
            : Environment.GetEnvironmentVariable(TorchrunRunIdVariable) is { Length: > 0 } run ? run
            : throw new LongCtxException($"WORLD_SIZE is set but {JobIdVariable} is not: give every rank of the job the same random {JobIdVariable} " +
                $"(longctx launch does; torchrun's {TorchrunRunIdVariable}, its rendezvous id, is taken instead when set)");
        var env = new LaunchEnvironment(rank, size, local, Required("MASTER_ADDR"), port, job);
        return Environment.GetEnvironmentVariable("LONGCTX_RENDEZVOUS_TIMEOUT") is { Length: > 0 } timeout
            ? env with { RendezvousTimeout = TimeSpan.FromSeconds(Int("LONGCTX_RENDEZVOUS_TIMEOUT", timeout, min: 1)) }
            : env;
    }

    /// <summary>Without the job's id, which is a secret of the job.</summary>
    public override string ToString() => $"rank {Rank} of {WorldSize} (local {LocalRank}), rendezvous at {MasterAddress}:{MasterPort}";

    /// <summary>A new job id: 128 random bits, as `longctx launch` gives its processes.</summary>
    public static string NewJobId() => Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));

    private static string Required(string name) =>
        Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v
            : throw new LongCtxException($"WORLD_SIZE is set but {name} is not: a multi-process run needs RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT (longctx launch sets them)");

    private static int Int(string name, string text, int min) =>
        int.TryParse(text, out int v) && v >= min ? v : throw new LongCtxException($"{name}={text} is not a whole number of at least {min}");
}
