using System.Text.Json;
using LongCtx.Tensors;

namespace LongCtx.Model;

/// <summary>
/// All the safetensors weights of a Hugging Face model directory, mapped: either one <c>model.safetensors</c>
/// or the shards that <c>model.safetensors.index.json</c> lists in its weight_map. Lookups go by tensor name
/// regardless of which shard holds it.
/// </summary>
public sealed class SafetensorsWeights : IDisposable
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    private readonly List<SafetensorsFile> _files = [];
    private readonly Dictionary<string, SafetensorsFile> _byName = new(StringComparer.Ordinal);

    private SafetensorsWeights(string directory) => DirectoryPath = directory;

    public string DirectoryPath { get; }
    public IReadOnlyList<SafetensorsFile> Files => _files;
    public IEnumerable<string> Names => _byName.Keys;

    public bool TryGet(string name, out HostTensor tensor, out SafetensorsFile file)
    {
        if (_byName.TryGetValue(name, out file!)) { tensor = file.Get(name); return true; }
        tensor = null!;
        return false;
    }

    public HostTensor Get(string name) =>
        TryGet(name, out var t, out _) ? t : throw new LongCtxException($"{DirectoryPath}: no tensor named {name} in the safetensors files");

    public static SafetensorsWeights Open(string dir)
    {
        if (!Directory.Exists(dir))
            throw new LongCtxException($"model directory {dir} does not exist: pass a Hugging Face model directory (config.json + model.safetensors)");
        var weights = new SafetensorsWeights(dir);
        try
        {
            string index = Path.Combine(dir, IndexFileName), single = Path.Combine(dir, SingleFileName);
            if (File.Exists(index)) weights.OpenSharded(index);
            else if (File.Exists(single)) weights.Add(SafetensorsFile.Open(single));
            else
            {
                bool pickle = Directory.EnumerateFiles(dir, "*.bin").Any() || Directory.EnumerateFiles(dir, "*.pth").Any();
                throw new LongCtxException($"{dir}: no {SingleFileName} or {IndexFileName}; download the safetensors weights" +
                    (pickle ? " (PyTorch .bin/.pth checkpoints are not supported)" : ""));
            }
            return weights;
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    private void OpenSharded(string indexPath)
    {
        string text;
        try { text = File.ReadAllText(indexPath); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LongCtxException($"{indexPath}: cannot read ({e.Message})", e);
        }
        using var doc = ConfigJson.ParseDocument(text, indexPath);
        if (!doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
            throw new LongCtxException($"{indexPath}: no weight_map object; the index is corrupt, re-download it");

        var shardOf = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var p in map.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.String)
                throw new LongCtxException($"{indexPath}: weight_map entry for {p.Name} is not a file name");
            shardOf[p.Name] = p.Value.GetString()!;
        }
        if (shardOf.Count == 0) throw new LongCtxException($"{indexPath}: weight_map is empty");

        var opened = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        foreach (string shard in shardOf.Values.Distinct().Order(StringComparer.Ordinal))
        {
            // Shards are plain file names next to the index; refuse anything that would reach elsewhere.
            if (shard.Length == 0 || Path.IsPathRooted(shard) || shard.Split('/', '\\').Contains(".."))
                throw new LongCtxException($"{indexPath}: shard name '{shard}' is not a file in the model directory");
            string path = Path.Combine(DirectoryPath, shard);
            if (!File.Exists(path))
                throw new LongCtxException($"{indexPath}: shard {shard} is listed in weight_map but missing from {DirectoryPath}; finish the download");
            var file = SafetensorsFile.Open(path);
            opened[shard] = file;
            _files.Add(file);
        }
        foreach (var (name, shard) in shardOf)
        {
            var file = opened[shard];
            if (!file.Tensors.ContainsKey(name))
                throw new LongCtxException($"{indexPath}: weight_map puts {name} in {shard}, but that file does not contain it; the download is inconsistent");
            _byName[name] = file;
        }
        // Tensors a shard holds beyond the index still resolve (the index is authoritative where they overlap).
        foreach (var file in _files)
            foreach (var name in file.Tensors.Keys)
                _byName.TryAdd(name, file);
    }

    private void Add(SafetensorsFile file)
    {
        _files.Add(file);
        foreach (var name in file.Tensors.Keys) _byName[name] = file;
    }

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
        _files.Clear();
        _byName.Clear();
    }
}
