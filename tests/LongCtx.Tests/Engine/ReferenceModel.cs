using System.Runtime.InteropServices;
using LongCtx.Backends.Cpu;
using LongCtx.Engine;
using LongCtx.Model;
using LongCtx.Sampling;
using LongCtx.Tensors;
using LongCtx.Tests.Model;

namespace LongCtx.Tests.Engine;

/// <summary>
/// A Hugging Face model directory with reference.safetensors made by transformers in float64: the
/// prompt's input_ids, the logits of its last four positions, the argmax at every position, and the
/// greedy continuation of 16 tokens.
/// </summary>
internal sealed class ReferenceModel
{
    // Tolerances: about three times the logits error measured on each fixture (docs/TESTS.md). tiny-llama3's greedy
    // continuation is one token repeated, so only tiny-qwen2's (16 different tokens) tests decoding for real.
    public static readonly ReferenceModel TinyLlama3 = new(Path.Combine(ModelFixtures.FixturesRoot, "tiny-llama3"), cpuTolerance: 7.5e-4, bf16Tolerance: 1.2e-2);
    public static readonly ReferenceModel TinyQwen2 = new(Path.Combine(ModelFixtures.RepoRoot, "tests", "data", "tiny-qwen2"), cpuTolerance: 3e-6, bf16Tolerance: 1.2e-2);

    public static ReferenceModel Named(string name) => name switch
    {
        "tiny-llama3" => TinyLlama3,
        "tiny-qwen2" => TinyQwen2,
        _ => throw new ArgumentException(name),
    };

    private ReferenceModel(string dir, double cpuTolerance, double bf16Tolerance)
    {
        Directory = dir;
        LogitsTolerance = cpuTolerance;
        Bf16LogitsTolerance = bf16Tolerance;
        using var file = SafetensorsFile.Open(Path.Combine(dir, "reference.safetensors"));
        InputIds = Longs(file.Get("input_ids")).Select(x => (int)x).ToArray();
        LogitsLast4 = Floats(file.Get("logits_last4"));
        ArgmaxAll = Longs(file.Get("argmax_all")).Select(x => (int)x).ToArray();
        Greedy16 = Longs(file.Get("greedy16")).Select(x => (int)x).ToArray();
        Config = ModelConfig.Load(dir);
    }

    public string Directory { get; }
    public ModelConfig Config { get; }
    public int[] InputIds { get; }
    public float[] LogitsLast4 { get; }
    public int[] ArgmaxAll { get; }
    public int[] Greedy16 { get; }
    /// <summary>The relative error of the last four positions' logits a float32 (CPU) run must stay under.</summary>
    public double LogitsTolerance { get; }
    /// <summary>The same for a bf16 (CUDA) run.</summary>
    public double Bf16LogitsTolerance { get; }

    /// <summary>An engine over this model's weights on <paramref name="ranks"/> CPU context ranks of <paramref name="tensorRanks"/> each. Dispose both.</summary>
    public (InferenceEngine Engine, ModelWeights Weights) Open(int ranks, int tensorRanks = 1)
    {
        var weights = ModelWeights.Load(Directory, Config);
        return (new InferenceEngine(Config, new CpuRankGroup(Config, weights, ranks, tensorRanks: tensorRanks)), weights);
    }

    /// <summary>
    /// Greedy decoding on the engine's (distributed) cache from the logits of the prompt's last position,
    /// as many tokens as the reference continuation holds.
    /// </summary>
    public List<int> GreedyContinuation(InferenceEngine engine, Sequence sequence, float[] lastLogits)
    {
        var tokens = new List<int>();
        var logits = lastLogits;
        for (int i = 0; i < Greedy16.Length; i++)
        {
            tokens.Add(Sampler.ArgMax(logits));
            if (i + 1 < Greedy16.Length) logits = engine.Decode([(sequence, tokens[^1])])[0];
        }
        return tokens;
    }

    private static long[] Longs(HostTensor t)
    {
        var a = new long[t.Length];
        Marshal.Copy(t.Data, a, 0, a.Length);
        return a;
    }

    private static float[] Floats(HostTensor t)
    {
        var a = new float[t.Length];
        Marshal.Copy(t.Data, a, 0, a.Length);
        return a;
    }
}
