using System.CommandLine;

namespace LongCtx.Cli;

/// <summary>
/// --tensor-parallel T (--tp, or vLLM's --tensor-parallel-size): each context-parallel rank's layers split over T ranks — heads and MLP columns,
/// two all-reduces per layer — as the CP paper runs TP inside a node and CP across nodes.
/// </summary>
internal static class TensorParallelOption
{
    public static Option<int> Create() => new("--tensor-parallel", "--tp", "--tensor-parallel-size")
    {
        Description = "ranks each context-parallel rank's layers are split over (heads and MLP; all-reduce per layer): GPUs of one node, or threads on the CPU; default 1",
        DefaultValueFactory = _ => 1,
    };
}
