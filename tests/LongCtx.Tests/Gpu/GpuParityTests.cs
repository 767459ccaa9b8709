using LongCtx.ContextParallel;
using LongCtx.Cuda;
using LongCtx.Cuda.Ranks;
using LongCtx.Engine;
using LongCtx.Model;
using LongCtx.Tests.ContextParallel;
using LongCtx.Tests.Engine;

namespace LongCtx.Tests.Gpu;

/// <summary>
/// The CUDA backend against transformers' float64 reference on the tiny Llama 3 fixture: bf16 logits within
/// 2e-2 relative and the same 16 greedy tokens, on 1, 2 and 4 GPUs (as many as there are) with both rings, their
/// blocks passed by NCCL or by copy engine, with more ranks than GPUs, and with each layer split over two
/// tensor-parallel ranks.
/// </summary>
public class GpuParityTests
{
    [GpuTheory]
    [InlineData(1, StrategyNames.PassKv)]
    [InlineData(2, StrategyNames.PassKv)]
    [InlineData(2, StrategyNames.PassQ)]
    [InlineData(4, StrategyNames.PassKv)]
    [InlineData(4, StrategyNames.PassQ)]
    public void MatchesTransformers(int gpus, string strategy)
    {
        gpus = Math.Min(gpus, GpuTheoryAttribute.AvailableGpus.Value);
        AssertMatchesTransformers((config, weights) => new GpuRankGroup(config, weights, gpus), strategy, $"{gpus} GPU(s)");
    }

    /// <summary>
    /// One rank per GPU with the ring blocks passed by the GPUs' copy engines instead of NCCL (the collectives stay
    /// NCCL's); on one GPU the ring has one rank and passes nothing.
    /// </summary>
    [GpuTheory]
    [InlineData(2, StrategyNames.PassKv)]
    [InlineData(4, StrategyNames.PassQ)]
    public void CopyEngineRingMatchesTransformers(int gpus, string strategy)
    {
        gpus = Math.Min(gpus, GpuTheoryAttribute.AvailableGpus.Value);
        AssertMatchesTransformers((config, weights) => new GpuRankGroup(config, weights, gpus, settings: CudaSettings.FromEnvironment() with { CopyEngineRing = true }), strategy, $"{gpus} GPU(s), copy-engine ring");
    }

    /// <summary>More ranks than GPUs: ranks share GPU 0 and talk through device copies, with the same result.</summary>
    [GpuTheory]
    [InlineData(3, StrategyNames.PassKv)]
    [InlineData(4, StrategyNames.PassQ)]
    public void SharedGpuRanksMatchTransformers(int ranks, string strategy)
    {
        AssertMatchesTransformers((config, weights) => new GpuRankGroup(config, weights, gpus: 1, ranks), strategy, $"{ranks} ranks on 1 GPU");
    }

    /// <summary>
    /// Context ranks × 2 tensor ranks: one GPU each through NCCL split into rings and tensor groups when there
    /// are enough GPUs, else sharing them through device copies.
    /// </summary>
    [GpuTheory]
    [InlineData(2, 1, StrategyNames.Dense)]
    [InlineData(4, 2, StrategyNames.PassKv)]
    [InlineData(1, 2, StrategyNames.PassQ)]
    public void TensorParallelRanksMatchTransformers(int gpus, int ranks, string strategy)
    {
        gpus = Math.Min(gpus, GpuTheoryAttribute.AvailableGpus.Value);
        AssertMatchesTransformers((config, weights) => new GpuRankGroup(config, weights, gpus, ranks, tensorRanks: 2), strategy,
            $"{ranks} context x 2 tensor ranks on {gpus} GPU(s)");
    }

    private static void AssertMatchesTransformers(Func<ModelConfig, ModelWeights, IRankGroup> group, string strategy, string what)
    {
        var reference = ReferenceModel.TinyLlama3;
        using var weights = ModelWeights.Load(reference.Directory, reference.Config);
        using var engine = new InferenceEngine(reference.Config, group(reference.Config, weights));
        var sequence = engine.NewSequence();
        var prefill = engine.Prefill([(sequence, reference.InputIds)], strategy, keepLast: 4);
        double error = DenseReference.RelativeError(prefill.Logits[0], reference.LogitsLast4);
        Assert.True(error < 2e-2, $"{what} {strategy}: logits relative error {error:e2}");

        var tokens = reference.GreedyContinuation(engine, sequence, prefill.Logits[0].AsSpan(3 * reference.Config.VocabSize).ToArray());
        Assert.Equal(reference.Greedy16, tokens);
    }
}
