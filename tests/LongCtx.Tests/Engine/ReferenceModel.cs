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
/// greedy continuation of 16 tokens. The family fixtures (tests/data/families, bench/reference/README.md) add the
/// top-2 margin at every position and a short prompt with the logits of all its positions.
/// </summary>
internal sealed class ReferenceModel
{
    // Tolerances: about three times the logits error measured on each fixture (docs/TESTS.md). tiny-llama3's greedy
    // continuation is one token repeated, so only tiny-qwen2's (16 different tokens) tests decoding for real.
    public static readonly ReferenceModel TinyLlama3 = new(Path.Combine(ModelFixtures.FixturesRoot, "tiny-llama3"), cpuTolerance: 7.5e-4, bf16Tolerance: 1.2e-2);
    public static readonly ReferenceModel TinyQwen2 = new(Path.Combine(ModelFixtures.RepoRoot, "tests", "data", "tiny-qwen2"), cpuTolerance: 3e-6, bf16Tolerance: 1.2e-2);

    /// <summary>The family fixtures of issue #29, by name.</summary>
    public static readonly string[] FamilyNames = ["tiny-qwen3", "tiny-mistral-swa", "tiny-qwen2-swa", "tiny-gemma2", "tiny-gemma3"];

    private static readonly Dictionary<string, ReferenceModel> Families = [];

    public static ReferenceModel Named(string name) => name switch
    {
        "tiny-llama3" => TinyLlama3,
        "tiny-qwen2" => TinyQwen2,
        _ when FamilyNames.Contains(name) => Family(name),
        _ => throw new ArgumentException(name),
    };

    private static ReferenceModel Family(string name)
    {
        lock (Families)
        {
            if (!Families.TryGetValue(name, out var model)) Families[name] = model = new ReferenceModel(Path.Combine(ModelFixtures.RepoRoot, "tests", "data", "families", name));
            return model;
        }
    }

    /// <summary>Any directory laid out like these (the FP8 fixtures of tests/data/fp8 are).</summary>
    public static ReferenceModel At(string dir) => new(dir);

    // The family and FP8 fixtures' tests state their own limits; these defaults are theirs (1e-3 on the CPU, 2e-2 in bf16).
    private ReferenceModel(string dir, double cpuTolerance = 1e-3, double bf16Tolerance = 2e-2)
    {
        Directory = dir;
        LogitsTolerance = cpuTolerance;
        Bf16LogitsTolerance = bf16Tolerance;
        using var file = SafetensorsFile.Open(Path.Combine(dir, "reference.safetensors"));
        InputIds = Longs(file.Get("input_ids")).Select(x => (int)x).ToArray();
        LogitsLast4 = Floats(file.Get("logits_last4"));
        ArgmaxAll = Longs(file.Get("argmax_all")).Select(x => (int)x).ToArray();
        Greedy16 = Longs(file.Get("greedy16")).Select(x => (int)x).ToArray();
        // The FP8 fixtures have the margins but no short prompt.
        if (file.Tensors.ContainsKey("margin_all")) MarginAll = Floats(file.Get("margin_all"));
        if (file.Tensors.ContainsKey("short_input_ids"))
        {
            ShortInputIds = Longs(file.Get("short_input_ids")).Select(x => (int)x).ToArray();
            ShortLogits = Floats(file.Get("short_logits"));
        }
        Config = ModelConfig.Load(dir);
    }

    public string Directory { get; }
    public ModelConfig Config { get; }
    public int[] InputIds { get; }
    public float[] LogitsLast4 { get; }
    public int[] ArgmaxAll { get; }
    public int[] Greedy16 { get; }
    /// <summary>Top-1 minus top-2 logit at every prompt position (family fixtures).</summary>
    public float[]? MarginAll { get; }
    public int[]? ShortInputIds { get; }
    /// <summary>[short prompt, vocab]: every position's logits (family fixtures).</summary>
    public float[]? ShortLogits { get; }

    /// <summary>
    /// The argmax is checked at every position whose top-2 margin is at least this: transformers builds RoPE tables in
    /// float32, which moves its logits by up to ~2e-4 relative on the 2083-token prompt against an engine with exact
    /// angles (bench/reference/README.md), so an argmax whose margin is below ~3e-3 may legitimately flip.
    /// </summary>
    public const float ArgmaxMarginTolerated = 3e-3f;

    /// <summary>Positions among the first <paramref name="count"/> where <paramref name="argmax"/> differs from the reference at a margin that should decide it.</summary>
    public int[] ArgmaxMismatches(int[] argmax, int count)
    {
        var wrong = new List<int>();
        for (int i = 0; i < count; i++)
            if (argmax[i] != ArgmaxAll[i] && (MarginAll is null || MarginAll[i] >= ArgmaxMarginTolerated)) wrong.Add(i);
        return wrong.ToArray();
    }
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

    /// <summary>A float32 tensor's values.</summary>
    public static float[] Floats(HostTensor t)
    {
        var a = new float[t.Length];
        Marshal.Copy(t.Data, a, 0, a.Length);
        return a;
    }
}
