using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Text.Json;
using LongCtx.Tensors;

namespace LongCtx.Model;

/// <summary>
/// One safetensors file, memory-mapped read-only: an 8-byte little-endian header length, a JSON header
/// (name → dtype, shape, data_offsets), then the raw tensor bytes. Tensors are <see cref="HostTensor"/>s that
/// point straight into the mapping, so opening a 100 GB checkpoint costs no copy and pages load on first use.
/// Every inconsistency in the header is reported as a LongCtxException naming the file and the problem,
/// before any tensor is handed out. The tensors are valid until this file is disposed.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    // The format's own limit on header size; anything larger is a corrupt length field.
    private const long MaxHeaderBytes = 100L << 20;

    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly Dictionary<string, HostTensor> _tensors;
    private bool _disposed;

    private SafetensorsFile(string path, long length, MemoryMappedFile map, MemoryMappedViewAccessor view, byte* basePtr)
    {
        FilePath = path;
        FileLength = length;
        _map = map;
        _view = view;
        BasePointer = basePtr;
        _tensors = new Dictionary<string, HostTensor>(StringComparer.Ordinal);
    }

    public string FilePath { get; }
    public long FileLength { get; }
    /// <summary>Start of the mapped file (the header-length field).</summary>
    internal byte* BasePointer { get; }
    /// <summary>Offset of the first tensor byte: 8 + header length.</summary>
    public long DataStart { get; private set; }
    public IReadOnlyDictionary<string, HostTensor> Tensors => _tensors;
    /// <summary>The optional <c>__metadata__</c> string map of the header.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; private set; } = new Dictionary<string, string>();

    public bool TryGet(string name, out HostTensor tensor) => _tensors.TryGetValue(name, out tensor!);

    public HostTensor Get(string name) =>
        _tensors.TryGetValue(name, out var t) ? t : throw new LongCtxException($"{FilePath}: no tensor named {name}");

    public static SafetensorsFile Open(string path)
    {
        if (!File.Exists(path)) throw new LongCtxException($"{path}: file not found");
        FileStream? stream = null;
        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        SafetensorsFile? file = null;
        try
        {
            // The size comes from the opened file: a hub-cache snapshot's files are symlinks into blobs/, and
            // FileInfo.Length of a link is the link's own size.
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            long length = stream.Length;
            if (length < 8)
                throw new LongCtxException($"{path}: only {length} bytes, too short for a safetensors file (truncated download?)");
            map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            stream = null; // the map owns it now
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* ptr = null;
            // Acquired once for the file's lifetime; released in Dispose.
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref ptr);
            ptr += view.PointerOffset;
            file = new SafetensorsFile(path, length, map, view, ptr);
            file.ParseHeader();
            return file;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Cleanup();
            throw new LongCtxException($"{path}: cannot map ({e.Message})", e);
        }
        catch
        {
            Cleanup();
            throw;
        }

        void Cleanup()
        {
            if (file is not null) file.Dispose();
            else
            {
                view?.Dispose();
                map?.Dispose();
                stream?.Dispose();
            }
        }
    }

    private void ParseHeader()
    {
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(BasePointer, 8));
        if (headerLength > (ulong)(FileLength - 8))
            throw Corrupt($"header length {headerLength} runs past the end of the file ({FileLength} bytes): the file is truncated or not safetensors");
        if ((long)headerLength > MaxHeaderBytes)
            throw Corrupt($"header length {headerLength} exceeds the format's 100 MB limit: the file is corrupt");
        DataStart = 8 + (long)headerLength;
        long dataLength = FileLength - DataStart;
        var spans = new List<(long Begin, long End, string Name)>();

        // Only the header is copied (it is small); tensor bytes stay in the mapping.
        var headerBytes = new ReadOnlySpan<byte>(BasePointer + 8, (int)headerLength).ToArray();
        JsonDocument doc;
        try { doc = JsonDocument.Parse(headerBytes); }
        catch (JsonException e)
        {
            throw Corrupt($"the JSON header is invalid ({e.Message.Split(". ")[0].TrimEnd('.')}): the file is corrupt or not safetensors", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Corrupt("the JSON header is not an object");
            foreach (var entry in doc.RootElement.EnumerateObject())
            {
                if (entry.Name == "__metadata__") { Metadata = ParseMetadata(entry.Value); continue; }
                var t = ParseTensor(entry.Name, entry.Value, dataLength, spans);
                if (!_tensors.TryAdd(entry.Name, t)) throw Corrupt($"tensor {entry.Name} is listed twice");
            }
        }
        CheckNoOverlap(spans);
    }

    /// <summary>Two tensors sharing bytes would alias each other's data: only a corrupt or crafted header does that.</summary>
    private void CheckNoOverlap(List<(long Begin, long End, string Name)> spans)
    {
        spans.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        for (int i = 1; i < spans.Count; i++)
        {
            var (p, c) = (spans[i - 1], spans[i]);
            if (c.Begin < p.End)
                throw Corrupt($"tensors {p.Name} [{p.Begin}, {p.End}] and {c.Name} [{c.Begin}, {c.End}] overlap in data_offsets: the file is corrupt");
        }
    }

    private HostTensor ParseTensor(string name, JsonElement e, long dataLength, List<(long Begin, long End, string Name)> spans)
    {
        if (e.ValueKind != JsonValueKind.Object) throw Corrupt($"header entry for tensor {name} is not an object");
        if (!e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw Corrupt($"tensor {name} has no dtype");
        string dtypeName = dt.GetString()!;
        if (!SafetensorsDTypes.TryParse(dtypeName, out var dtype))
            throw Corrupt($"tensor {name} has dtype {dtypeName}, which is not supported (supported: {SafetensorsDTypes.Supported})");

        if (!e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw Corrupt($"tensor {name} has no shape");
        var shape = new int[sh.GetArrayLength()];
        Int128 numel = 1; // wide enough that one more int dimension cannot overflow it
        int k = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt32(out int v) || v < 0)
                throw Corrupt($"tensor {name} has an invalid shape {sh.GetRawText()}");
            shape[k++] = v;
            numel *= v;
            if (numel > long.MaxValue) throw Corrupt($"tensor {name} has an impossible shape {sh.GetRawText()}");
        }

        if (!e.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2
            || !off[0].TryGetInt64(out long begin) || !off[1].TryGetInt64(out long end))
            throw Corrupt($"tensor {name} has no valid data_offsets");
        if (begin < 0 || end < begin || end > dataLength)
            throw Corrupt($"tensor {name} has data_offsets [{begin}, {end}] outside the data section ({dataLength} bytes): the file is truncated or corrupt");
        Int128 expected = numel * dtype.SizeOf();
        if (end - begin != expected)
            throw Corrupt($"tensor {name} spans {end - begin} bytes but {dtypeName}[{string.Join(", ", shape)}] needs {expected}: the file is corrupt");

        if (end > begin) spans.Add((begin, end, name));
        return new HostTensor(name, dtype, shape, (nint)(BasePointer + DataStart + begin), this);
    }

    private Dictionary<string, string> ParseMetadata(JsonElement e)
    {
        if (e.ValueKind != JsonValueKind.Object) throw Corrupt("__metadata__ is not an object");
        var m = new Dictionary<string, string>();
        foreach (var p in e.EnumerateObject())
            m[p.Name] = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()! : p.Value.GetRawText();
        return m;
    }

    private LongCtxException Corrupt(string what, Exception? inner = null) => new($"{FilePath}: {what}", inner);

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }

    public override string ToString() => $"{FilePath} ({_tensors.Count} tensors)";
}
