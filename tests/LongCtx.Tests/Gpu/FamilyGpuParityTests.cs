using LongCtx.ContextParallel;
using LongCtx.Cuda.Ranks;
using LongCtx.Engine;
using LongCtx.Model;
using LongCtx.Tests.ContextParallel;
using LongCtx.Tests.Engine;

namespace LongCtx.Tests.Gpu;

/// <summary>
/// The families on the CUDA backend against their reference fixtures (tests/data/families): bf16 logits of the last
/// four positions within 2e-2 relative and the 16 greedy tokens decoded on the GPU caches — on one GPU, on two with
/// each ring (skipped, and counted, where there are fewer), with three ranks sharing one GPU (the halo exchange through device copies) and
/// with each layer over two tensor-parallel ranks. Every path a family takes runs here: the windowed cuDNN band or the
/// own kernel with its window, Gemma 2's soft caps, the (1 + w) norms, GELU-tanh, per-head q/k norms, the embedding
/// scale, the decode kernels on windowed caches. Each case runs every family in turn.
/// </summary>
public class FamilyGpuParityTests
{
    [GpuTheory]
    [GpuData(1, 1, 1, StrategyNames.Dense)]
    [GpuData(2, 2, 1, StrategyNames.PassKv)]
    [GpuData(2, 2, 1, StrategyNames.PassQ)]
    [GpuData(1, 3, 1, StrategyNames.PassKv)]
    [GpuData(1, 1, 2, StrategyNames.Dense)]
    public void MatchesTheReference(int gpus, int ranks, int tensorRanks, string strategy)
    {
        foreach (var model in ReferenceModel.FamilyNames)
        {
            var reference = ReferenceModel.Named(model);
            using var weights = ModelWeights.Load(reference.Directory, reference.Config);
            using var engine = new InferenceEngine(reference.Config, new GpuRankGroup(reference.Config, weights, gpus, ranks, tensorRanks: tensorRanks));
            var sequence = engine.NewSequence();
            var prefill = engine.Prefill([(sequence, reference.InputIds)], strategy, keepLast: 4);
            string what = $"{model} on {gpus} GPU(s), {ranks} context x {tensorRanks} tensor ranks, {strategy}";
            double error = DenseReference.RelativeError(prefill.Logits[0], reference.LogitsLast4);
            Assert.True(error < 2e-2, $"{what}: logits relative error {error:e2}");
            var tokens = reference.GreedyContinuation(engine, sequence, prefill.Logits[0].AsSpan(3 * reference.Config.VocabSize).ToArray());
            Assert.Equal(reference.Greedy16, tokens);
        }
    }
}
