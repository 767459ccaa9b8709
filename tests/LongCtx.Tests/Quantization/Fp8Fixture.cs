using System.Text.Json;
using LongCtx.Backends.Cpu;
using LongCtx.Engine;
using LongCtx.Model;
using LongCtx.Tests.Engine;
using LongCtx.Tests.Model;

namespace LongCtx.Tests.Quantization;

/// <summary>
/// An FP8 fixture of tests/data/fp8 (bench/reference/make_fp8_fixtures.py): a checkpoint in one format, its float64
/// reference (<see cref="ReferenceModel"/>'s keys plus logits_all) and the codes and scales of every quantisation the
/// reference made (activations.safetensors, per site: prompt rows, then one row per decode step).
/// </summary>
internal sealed class Fp8Fixture
{
    public static string Root => Path.Combine(ModelFixtures.RepoRoot, "tests", "data", "fp8");

    /// <summary>The checkpoints of both models in every format.</summary>
    public static IEnumerable<string> Checkpoints(bool withOnline = true)
    {
        foreach (string model in new[] { "tiny-llama", "tiny-qwen3" })
        {
            foreach (string format in new[] { "fp8-ct-channel", "fp8-ct-tensor", "fp8-fbgemm", "fp8-block", "fp8-ct-kv", "bf16" })
                if (System.IO.Directory.Exists(Path.Combine(Root, $"{model}-{format}")) && (withOnline || format != "bf16"))
                    yield return $"{model}-{format}";
        }
    }

    public Fp8Fixture(string name)
    {
        Name = name;
        Directory = Path.Combine(Root, name);
        Reference = ReferenceModel.At(Directory);
        using (var file = SafetensorsFile.Open(Path.Combine(Directory, "reference.safetensors")))
            LogitsAll = ReferenceModel.Floats(file.Get("logits_all"));
        using (var file = SafetensorsFile.Open(Path.Combine(Directory, "activations.safetensors")))
            foreach (var (key, codes) in file.Tensors.Where(t => t.Key.EndsWith(".codes", StringComparison.Ordinal)))
            {
                string site = key[..^".codes".Length];
                var scale = file.Get(site + ".scale");
                Sites[site] = new SiteCodes(codes.Shape[0], codes.Shape[1], ModelFixtures.Bytes(codes), ReferenceModel.Floats(scale), scale.Shape);
            }
        using var facts = JsonDocument.Parse(File.ReadAllText(Path.Combine(Directory, "facts.json")));
        QuantizationMargin = facts.RootElement.GetProperty("quantization_margin").GetDouble();
    }

    public string Name { get; }
    public string Directory { get; }
    public ReferenceModel Reference { get; }
    /// <summary>[32, vocab]: every prompt position.</summary>
    public float[] LogitsAll { get; }
    public Dictionary<string, SiteCodes> Sites { get; } = new(StringComparer.Ordinal);
    public double QuantizationMargin { get; }
    /// <summary>The bf16 checkpoint whose reference is its W8A8 model under <c>--quantization fp8</c>.</summary>
    public bool Online => Name.EndsWith("-bf16", StringComparison.Ordinal);

    /// <summary>The config the engine runs: the checkpoint's, with <c>--quantization fp8</c> for the bf16 one.</summary>
    public ModelConfig Config => Online ? Reference.Config with { Quantization = QuantizationConfig.OnlineFp8 } : Reference.Config;

    /// <summary>An engine on <paramref name="ranks"/> × <paramref name="tensorRanks"/> CPU ranks; the KV cache as the checkpoint says (auto). Dispose both.</summary>
    public (InferenceEngine Engine, ModelWeights Weights) Open(int ranks, IQuantizationHook? hook = null, KvCacheDType kv = KvCacheDType.Auto, int tensorRanks = 1)
    {
        var config = Config;
        var weights = ModelWeights.Load(Directory, config, kv);
        return (new InferenceEngine(config, new CpuRankGroup(config, weights, ranks, tensorRanks: tensorRanks, hook: hook)), weights);
    }
}

/// <summary>One site's reference quantisations: codes [Rows, K] and scales ([Rows], [Rows, K/128] or [1]).</summary>
internal sealed record SiteCodes(int Rows, int K, byte[] Codes, float[] Scales, int[] ScaleShape)
{
    public int ScalesPerRow => ScaleShape.Length == 2 ? ScaleShape[1] : ScaleShape[0] == Rows && Rows > 1 ? 1 : 0;

    /// <summary>Element j of row r as the reference dequantised it.</summary>
    public float Value(int r, int j)
    {
        int per = ScalesPerRow;
        float s = per == 0 ? Scales[0] : Scales[r * per + (per > 1 ? j / 128 : 0)];
        return LongCtx.Quantization.E4M3.Values[Codes[r * K + j]] * s;
    }
}
