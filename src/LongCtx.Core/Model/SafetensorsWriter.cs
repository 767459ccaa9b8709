using System.Buffers.Binary;
using System.Text.Json;
using LongCtx.Tensors;

namespace LongCtx.Model;

/// <summary>
/// Writes a safetensors file (for --dump-logits and for tests). The file is written under a temporary name in
/// the same directory and renamed into place at the end, so an interrupted write never leaves a half-written
/// file that a later reader would take for a real one; a path the rename must not replace is refused
/// (<see cref="OutputFile"/>).
/// </summary>
public static class SafetensorsWriter
{
    public static void Write(string path, IEnumerable<(string name, DType dtype, int[] shape, ReadOnlyMemory<byte> data)> tensors,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        byte[] header = BuildHeader(path, list, metadata);

        OutputFile.Require(path);
        string full = Path.GetFullPath(path);
        string? dir = Path.GetDirectoryName(full);
        string temp = Path.Combine(dir ?? ".", $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                Span<byte> len = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)header.Length);
                fs.Write(len);
                fs.Write(header);
                foreach (var t in list) fs.Write(t.data.Span);
                fs.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(temp);
            throw new LongCtxException($"{path}: cannot write ({e.Message})", e);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>The JSON header, space-padded to a multiple of 8 bytes so tensor data starts aligned.</summary>
    private static byte[] BuildHeader(string path, List<(string name, DType dtype, int[] shape, ReadOnlyMemory<byte> data)> list,
        IReadOnlyDictionary<string, string>? metadata)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, dtype, shape, data) in list)
            {
                if (name == "__metadata__" || !names.Add(name))
                    throw new LongCtxException($"{path}: tensor name {name} is reserved or given twice");
                long numel = 1;
                foreach (int d in shape)
                {
                    if (d < 0) throw new LongCtxException($"{path}: tensor {name} has a negative dimension in [{string.Join(", ", shape)}]");
                    numel *= d;
                }
                long bytes = numel * dtype.SizeOf();
                if (bytes != data.Length)
                    throw new LongCtxException($"{path}: tensor {name} is {dtype}[{string.Join(", ", shape)}] = {bytes} bytes but {data.Length} bytes were given");
                w.WriteStartObject(name);
                w.WriteString("dtype", SafetensorsDTypes.Name(dtype));
                w.WriteStartArray("shape");
                foreach (int d in shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + bytes);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += bytes;
            }
            w.WriteEndObject();
        }
        int pad = (int)((8 - ms.Length % 8) % 8);
        for (int i = 0; i < pad; i++) ms.WriteByte((byte)' ');
        return ms.ToArray();
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
