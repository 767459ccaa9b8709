using System.Runtime.InteropServices;
using LongCtx.Model;
using LongCtx.Tensors;

namespace LongCtx.Tests.Model;

/// <summary>Where the shared reference fixtures are, plus small helpers the model tests share.</summary>
internal static class ModelFixtures
{
    /// <summary>
    /// The reference fixtures made with transformers: LONGCTX_FIXTURES when set, else the copy of
    /// ../shared/fixtures kept in tests/data/fixtures (so a clean checkout tests without the shared folder).
    /// </summary>
    public static string FixturesRoot
    {
        get
        {
            string? env = Environment.GetEnvironmentVariable("LONGCTX_FIXTURES");
            return !string.IsNullOrEmpty(env) ? env : Path.Combine(RepoRoot, "tests", "data", "fixtures");
        }
    }

    /// <summary>The directory holding LongCtx.slnx, found by walking up from the test binaries.</summary>
    public static string RepoRoot
    {
        get
        {
            for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "LongCtx.slnx"))) return d.FullName;
            throw new InvalidOperationException($"no LongCtx.slnx above {AppContext.BaseDirectory}");
        }
    }

    public static string TinyLlama3 => Path.Combine(FixturesRoot, "tiny-llama3");

    /// <summary>A fresh empty directory under the system temp folder; deleted by the returned handle.</summary>
    public static TempDir NewTempDir() => new();

    public sealed class TempDir : IDisposable
    {
        public TempDir()
        {
            Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "longctx-models-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(Path);
        }

        public string Path { get; }
        public string File(string name) => System.IO.Path.Combine(Path, name);
        public void Dispose() { try { Directory.Delete(Path, recursive: true); } catch (IOException) { } }
    }

    /// <summary>A copy of a host tensor's bytes (tests only; the engine never copies weights this way).</summary>
    public static byte[] Bytes(HostTensor t)
    {
        var b = new byte[t.Bytes];
        Marshal.Copy(t.Data, b, 0, b.Length);
        return b;
    }

    public static float Bf16ToFloat(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    public static float ReadFloat(HostTensor t, long index) => t.DType switch
    {
        DType.BF16 => Bf16ToFloat((ushort)Marshal.ReadInt16(t.Data, checked((int)(index * 2)))),
        DType.F16 => (float)BitConverter.UInt16BitsToHalf((ushort)Marshal.ReadInt16(t.Data, checked((int)(index * 2)))),
        DType.F32 => BitConverter.Int32BitsToSingle(Marshal.ReadInt32(t.Data, checked((int)(index * 4)))),
        _ => throw new ArgumentException("not a float tensor"),
    };

    /// <summary>A small Llama config (hidden 16, 4 heads of 4, 2 kv heads) for tests that write checkpoints.</summary>
    public const string MiniLlamaConfig = """
        {
          "architectures": ["LlamaForCausalLM"], "model_type": "llama",
          "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 2,
          "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 32,
          "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
          "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": [2, 3]
        }
        """;

    /// <summary>Writes config.json and the weights (as one file or split in <paramref name="shards"/>) to dir.</summary>
    public static void WriteCheckpoint(string dir, string configJson, ModelWeights weights, int shards = 1,
        Func<string, HostTensor, (string, DType, int[], ReadOnlyMemory<byte>)?>? edit = null)
    {
        File.WriteAllText(System.IO.Path.Combine(dir, "config.json"), configJson);
        var all = new List<(string name, DType dtype, int[] shape, ReadOnlyMemory<byte> data)>();
        foreach (var t in AllTensors(weights))
        {
            var item = edit is null ? (t.Name, t.DType, t.Shape, (ReadOnlyMemory<byte>)Bytes(t)) : edit(t.Name, t);
            if (item is { } x) all.Add(x);
        }
        if (shards == 1)
        {
            SafetensorsWriter.Write(System.IO.Path.Combine(dir, "model.safetensors"), all);
            return;
        }
        var map = new Dictionary<string, string>();
        int per = (all.Count + shards - 1) / shards;
        for (int s = 0; s < shards; s++)
        {
            string name = $"model-{s + 1:00000}-of-{shards:00000}.safetensors";
            var part = all.Skip(s * per).Take(per).ToList();
            SafetensorsWriter.Write(System.IO.Path.Combine(dir, name), part);
            foreach (var p in part) map[p.name] = name;
        }
        var index = new { metadata = new { total_size = all.Sum(t => (long)t.data.Length) }, weight_map = map };
        File.WriteAllText(System.IO.Path.Combine(dir, "model.safetensors.index.json"), System.Text.Json.JsonSerializer.Serialize(index));
    }

    public static IEnumerable<HostTensor> AllTensors(ModelWeights w)
    {
        yield return w.Embedding;
        foreach (var l in w.Layers)
            foreach (var t in new[] { l.InputNorm, l.QProj, l.KProj, l.VProj, l.QBias, l.KBias, l.VBias, l.QNorm, l.KNorm, l.OProj, l.OBias,
                         l.PostAttentionNorm, l.PreFeedforwardNorm, l.PostFeedforwardNorm, l.GateProj, l.UpProj, l.DownProj })
                if (t is not null) yield return t;
        yield return w.FinalNorm;
        if (!w.IsTied) yield return w.LmHead;
    }
}
