using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FlowHN.Runtime;

namespace FlowHN.Training;

/// <summary>
/// The safetensors format: an 8-byte little-endian header length, a JSON header mapping each name to
/// {dtype, shape, data_offsets [begin, end)} relative to the data section, then the raw little-endian data.
/// We write F32 only; the header is padded with spaces to a multiple of 8 bytes.
/// </summary>
public static class Safetensors
{
    public sealed record Entry(string Name, int[] Shape, float[] Data);

    /// <summary>Writes to <paramref name="path"/> (callers write into a temporary directory and rename it).</summary>
    public static void Write(string path, IEnumerable<Entry> entries, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = entries.ToList();
        var header = new JsonObject();
        if (metadata is { Count: > 0 })
        {
            var meta = new JsonObject();
            foreach (var (k, v) in metadata) meta[k] = v;
            header["__metadata__"] = meta;
        }
        long offset = 0;
        foreach (var e in list)
        {
            long bytes = (long)e.Data.Length * sizeof(float);
            header[e.Name] = new JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new JsonArray(e.Shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)padded);
        stream.Write(length);
        stream.Write(json);
        for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
        foreach (var e in list)
        {
            var bytes = new byte[e.Data.Length * sizeof(float)];
            for (int i = 0; i < e.Data.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), e.Data[i]);
            stream.Write(bytes);
        }
        stream.Flush(flushToDisk: true);
    }

    /// <summary>Reads every F32 tensor; anything malformed is a user error naming the file.</summary>
    public static Dictionary<string, Entry> Read(string path) => Read(path, out _);

    /// <summary>Reads every F32 tensor and the header's <c>__metadata__</c> strings.</summary>
    public static Dictionary<string, Entry> Read(string path, out IReadOnlyDictionary<string, string> metadata)
    {
        if (!File.Exists(path)) throw new UserException($"Checkpoint file {path} does not exist.");
        byte[] all = File.ReadAllBytes(path);
        try
        {
            ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(all);
            if (headerLength > (ulong)all.Length - 8) throw new FormatException("header length beyond end of file");
            var header = JsonNode.Parse(Encoding.UTF8.GetString(all, 8, (int)headerLength))!.AsObject();
            long dataStart = 8 + (long)headerLength;
            metadata = header["__metadata__"] is JsonObject meta
                ? meta.ToDictionary(kv => kv.Key, kv => (string?)kv.Value ?? "")
                : new Dictionary<string, string>();
            var result = new Dictionary<string, Entry>();
            foreach (var (name, node) in header)
            {
                if (name == "__metadata__") continue;
                var o = node!.AsObject();
                if ((string?)o["dtype"] != "F32") throw new FormatException($"tensor {name} is {(string?)o["dtype"]}, only F32 is supported");
                int[] shape = o["shape"]!.AsArray().Select(x => (int)x!).ToArray();
                long begin = (long)o["data_offsets"]![0]!, end = (long)o["data_offsets"]![1]!;
                long count = shape.Aggregate(1L, (a, d) => a * d);
                if (end - begin != count * 4 || dataStart + end > all.Length) throw new FormatException($"tensor {name} has bad offsets");
                var data = new float[count];
                for (long i = 0; i < count; i++) data[i] = BinaryPrimitives.ReadSingleLittleEndian(all.AsSpan((int)(dataStart + begin + i * 4)));
                result[name] = new Entry(name, shape, data);
            }
            return result;
        }
        catch (Exception e) when (e is FormatException or JsonException or InvalidOperationException or ArgumentException or IndexOutOfRangeException)
        {
            throw new UserException($"Checkpoint file {path} is not a valid safetensors file ({e.Message}).", e);
        }
    }
}
