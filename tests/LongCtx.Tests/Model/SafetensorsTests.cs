using System.Buffers.Binary;
using System.Text;
using LongCtx.Model;
using LongCtx.Tensors;

namespace LongCtx.Tests.Model;

public class SafetensorsTests
{
    private static byte[] Floats(params float[] v)
    {
        var b = new byte[v.Length * 4];
        for (int i = 0; i < v.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(i * 4), v[i]);
        return b;
    }

    /// <summary>A file made by hand: 8-byte length, the header text as given, then the data.</summary>
    private static void WriteRaw(string path, string header, byte[] data, ulong? lengthField = null)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var all = new byte[8 + h.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(all, lengthField ?? (ulong)h.Length);
        h.CopyTo(all, 8);
        data.CopyTo(all, 8 + h.Length);
        File.WriteAllBytes(path, all);
    }

    [Fact]
    public void WriteThenReadRoundTrips()
    {
        using var dir = ModelFixtures.NewTempDir();
        string path = dir.File("t.safetensors");
        var ids = new byte[3 * 8];
        for (int i = 0; i < 3; i++) BinaryPrimitives.WriteInt64LittleEndian(ids.AsSpan(i * 8), 100 + i);
        SafetensorsWriter.Write(path, [
            ("logits", DType.F32, [2, 2], Floats(1, -2, 3.5f, 0)),
            ("ids", DType.I64, [3], ids),
            ("empty", DType.BF16, [0, 4], Array.Empty<byte>()),
        ], new Dictionary<string, string> { ["format"] = "pt" });

        Assert.DoesNotContain(Directory.GetFiles(dir.Path), f => f.EndsWith(".tmp"));
        using var f = SafetensorsFile.Open(path);
        Assert.Equal(0, f.DataStart % 8);
        Assert.Equal("pt", f.Metadata["format"]);
        var logits = f.Get("logits");
        Assert.Equal(DType.F32, logits.DType);
        Assert.Equal([2, 2], logits.Shape);
        Assert.Same(f, logits.Owner);
        Assert.Equal(3.5f, ModelFixtures.ReadFloat(logits, 2));
        Assert.Equal(Floats(1, -2, 3.5f, 0), ModelFixtures.Bytes(logits));
        Assert.Equal(ids, ModelFixtures.Bytes(f.Get("ids")));
        Assert.Equal(0, f.Get("empty").Length);
        Assert.False(f.TryGet("nope", out _));
        Assert.Throws<LongCtxException>(() => f.Get("nope"));
    }

    [Fact]
    public void WriterRejectsSizeMismatchAndLeavesNothing()
    {
        using var dir = ModelFixtures.NewTempDir();
        string path = dir.File("bad.safetensors");
        var e = Assert.Throws<LongCtxException>(() => SafetensorsWriter.Write(path, [("x", DType.F32, [3], Floats(1, 2))]));
        Assert.Contains("x is F32[3] = 12 bytes but 8 bytes were given", e.Message);
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void WriterReplacesExistingFile()
    {
        using var dir = ModelFixtures.NewTempDir();
        string path = dir.File("t.safetensors");
        SafetensorsWriter.Write(path, [("a", DType.F32, [1], Floats(1))]);
        SafetensorsWriter.Write(path, [("b", DType.F32, [2], Floats(2, 3))]);
        using var f = SafetensorsFile.Open(path);
        Assert.Equal(["b"], f.Tensors.Keys);
        Assert.Single(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void TruncatedFileIsRejected()
    {
        using var dir = ModelFixtures.NewTempDir();
        string path = dir.File("t.safetensors");
        SafetensorsWriter.Write(path, [("a", DType.F32, [4], Floats(1, 2, 3, 4)), ("b", DType.F32, [4], Floats(5, 6, 7, 8))]);
        using (var fs = new FileStream(path, FileMode.Open)) fs.SetLength(fs.Length - 5);
        var e = Assert.Throws<LongCtxException>(() => SafetensorsFile.Open(path));
        Assert.StartsWith(path + ": tensor b has data_offsets [16, 32] outside the data section (27 bytes)", e.Message);
    }

    [Fact]
    public void HeaderLengthBeyondFileIsRejected()
    {
        using var dir = ModelFixtures.NewTempDir();
        string path = dir.File("t.safetensors");
        WriteRaw(path, "{}      ", [], lengthField: 1_000_000);
        var e = Assert.Throws<LongCtxException>(() => SafetensorsFile.Open(path));
        Assert.Contains("header length 1000000 runs past the end of the file (16 bytes)", e.Message);
        Assert.StartsWith(path, e.Message);
    }

    [Fact]
    public void TooShortFileIsRejected()
    {
        using var dir = ModelFixtures.NewTempDir();
        string path = dir.File("t.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        var e = Assert.Throws<LongCtxException>(() => SafetensorsFile.Open(path));
        Assert.Contains("only 3 bytes", e.Message);
    }

    [Fact]
    public void BadJsonHeaderIsRejected()
    {
        using var dir = ModelFixtures.NewTempDir();
        string path = dir.File("t.safetensors");
        WriteRaw(path, "{\"a\": {\"dtype\": ", new byte[16]);
        var e = Assert.Throws<LongCtxException>(() => SafetensorsFile.Open(path));
        Assert.Contains("the JSON header is invalid", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void WrongByteSizeIsRejected()
    {
        using var dir = ModelFixtures.NewTempDir();
        string path = dir.File("t.safetensors");
        WriteRaw(path, """{"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}}""", new byte[12]);
        var e = Assert.Throws<LongCtxException>(() => SafetensorsFile.Open(path));
        Assert.Contains("tensor w spans 12 bytes but F32[2, 2] needs 16", e.Message);
    }

    [Fact]
    public void UnsupportedDTypeIsRejected()
    {
        using var dir = ModelFixtures.NewTempDir();
        string path = dir.File("t.safetensors");
        WriteRaw(path, """{"w": {"dtype": "F8_E5M2", "shape": [4], "data_offsets": [0, 4]}}""", new byte[4]);
        var e = Assert.Throws<LongCtxException>(() => SafetensorsFile.Open(path));
        Assert.Contains("tensor w has dtype F8_E5M2, which is not supported (supported: BF16, F16, F32, I32, I64, F8_E4M3, U8)", e.Message);
    }

    [Fact]
    public void MissingFileIsRejected()
    {
        var e = Assert.Throws<LongCtxException>(() => SafetensorsFile.Open("/nonexistent/x.safetensors"));
        Assert.Equal("/nonexistent/x.safetensors: file not found", e.Message);
    }

    [Fact]
    public void ShardedDirectoryResolvesEveryTensor()
    {
        using var dir = ModelFixtures.NewTempDir();
        SafetensorsWriter.Write(dir.File("model-00001-of-00002.safetensors"), [("a", DType.F32, [2], Floats(1, 2))]);
        SafetensorsWriter.Write(dir.File("model-00002-of-00002.safetensors"), [("b", DType.F32, [1], Floats(3)), ("c", DType.F32, [1], Floats(4))]);
        File.WriteAllText(dir.File("model.safetensors.index.json"), """
            {"metadata": {"total_size": 16}, "weight_map": {"a": "model-00001-of-00002.safetensors",
             "b": "model-00002-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}}
            """);
        using var w = SafetensorsWeights.Open(dir.Path);
        Assert.Equal(2, w.Files.Count);
        Assert.Equal(2f, ModelFixtures.ReadFloat(w.Get("a"), 1));
        Assert.Equal(4f, ModelFixtures.ReadFloat(w.Get("c"), 0));
        Assert.True(w.TryGet("b", out _, out var file));
        Assert.EndsWith("model-00002-of-00002.safetensors", file.FilePath);
    }

    [Fact]
    public void ShardIndexProblemsAreNamed()
    {
        using var dir = ModelFixtures.NewTempDir();
        SafetensorsWriter.Write(dir.File("s1.safetensors"), [("a", DType.F32, [1], Floats(1))]);
        File.WriteAllText(dir.File("model.safetensors.index.json"), """{"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}}""");
        var e = Assert.Throws<LongCtxException>(() => SafetensorsWeights.Open(dir.Path));
        Assert.Contains("shard s2.safetensors is listed in weight_map but missing", e.Message);

        File.WriteAllText(dir.File("model.safetensors.index.json"), """{"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors"}}""");
        e = Assert.Throws<LongCtxException>(() => SafetensorsWeights.Open(dir.Path));
        Assert.Contains("weight_map puts b in s1.safetensors, but that file does not contain it", e.Message);

        File.WriteAllText(dir.File("model.safetensors.index.json"), """{"weight_map": {"a": "../s1.safetensors"}}""");
        e = Assert.Throws<LongCtxException>(() => SafetensorsWeights.Open(dir.Path));
        Assert.Contains("is not a file in the model directory", e.Message);

        File.WriteAllText(dir.File("model.safetensors.index.json"), """{"weight_map": """);
        e = Assert.Throws<LongCtxException>(() => SafetensorsWeights.Open(dir.Path));
        Assert.Contains("model.safetensors.index.json: invalid JSON", e.Message);
    }

    [Fact]
    public void DirectoryWithoutWeightsIsNamed()
    {
        using var dir = ModelFixtures.NewTempDir();
        File.WriteAllBytes(dir.File("pytorch_model.bin"), [0]);
        var e = Assert.Throws<LongCtxException>(() => SafetensorsWeights.Open(dir.Path));
        Assert.Contains("no model.safetensors or model.safetensors.index.json", e.Message);
        Assert.Contains(".bin/.pth checkpoints are not supported", e.Message);
    }

    [Fact]
    public void Overlapping_data_offsets_are_refused()
    {
        using var dir = ModelFixtures.NewTempDir();
        string path = dir.File("overlap.safetensors");
        WriteRaw(path, """{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}""", Floats(1, 2, 3));
        var e = Assert.Throws<LongCtxException>(() => SafetensorsFile.Open(path));
        Assert.Equal($"{path}: tensors a [0, 8] and b [4, 12] overlap in data_offsets: the file is corrupt", e.Message);
        // Adjacent and empty tensors share no bytes and stay accepted.
        WriteRaw(path, """{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "e": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}""", Floats(1, 2, 3));
        using var ok = SafetensorsFile.Open(path);
        Assert.Equal(3, ok.Tensors.Count);
    }

    [Fact]
    public void A_symlink_is_read_at_its_target_size()
    {
        using var dir = ModelFixtures.NewTempDir();
        string target = dir.File("blob"), link = dir.File("model.safetensors");
        SafetensorsWriter.Write(target, [("w", DType.F32, [3], Floats(1, 2, 3))]);
        File.CreateSymbolicLink(link, "blob");
        Assert.True(new FileInfo(link).Length < new FileInfo(target).Length, "the link itself is smaller than its target");
        using var f = SafetensorsFile.Open(link);
        Assert.Equal(new FileInfo(target).Length, f.FileLength);
        Assert.Equal(2f, ModelFixtures.ReadFloat(f.Get("w"), 1));
    }
}
