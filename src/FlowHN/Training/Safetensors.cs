using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;
using FlowHN.Runtime;
using FlowHN.Tensors;

namespace FlowHN.Training;

/// <summary>
/// The safetensors format: an 8-byte little-endian header length, a JSON header mapping each name to
/// {dtype, shape, data_offsets [begin, end)} relative to the data section, then the raw little-endian data.
/// We write F32 only; the header is padded with spaces to a multiple of 8 bytes. Tensors stream through one
/// bounded host buffer in both directions and offsets are 64-bit, so files of any size read and write in a few
/// MiB of host memory. Each tensor's XXH3-64 checksum goes into the metadata as <c>xxh3.NAME</c> (16 hex
/// digits) and is verified when the tensor is read; files without checksums (other tools) still load.
/// </summary>
public static class Safetensors
{
    /// <summary>Prefix of a tensor's checksum key in <c>__metadata__</c>.</summary>
    public const string ChecksumPrefix = "xxh3.";

    /// <summary>Floats per streamed chunk (16 MiB).</summary>
    internal const int ChunkFloats = 1 << 22;

    public sealed record Entry(string Name, int[] Shape, float[] Data);

    /// <summary>
    /// A tensor to write: its name, shape and a function that fills a chunk with elements [offset, offset + chunk.Length).
    /// </summary>
    public sealed record Source(string Name, int[] Shape, Action<long, Span<float>> Fill)
    {
        public long Length => Shape.Aggregate(1L, (a, d) => a * d);

        public static Source Of(Entry e) => new(e.Name, e.Shape, (offset, chunk) => e.Data.AsSpan((int)offset, chunk.Length).CopyTo(chunk));

        public static Source Of(string name, Tensor t) => new(name, t.Shape, t.CopyRangeToHost);
    }

    public static void Write(string path, IEnumerable<Entry> entries, IReadOnlyDictionary<string, string>? metadata = null) =>
        Write(path, entries.Select(Source.Of).ToList(), metadata);

    /// <summary>
    /// Writes to <paramref name="path"/> (callers write into a temporary directory and rename it). The header is
    /// written first with placeholder checksums of the final width, then the data, then the header again with
    /// the real checksums, so every tensor is read from the device once.
    /// </summary>
    public static void Write(string path, IReadOnlyList<Source> sources, IReadOnlyDictionary<string, string>? metadata = null)
    {
        RequireLittleEndian();
        var checksums = sources.ToDictionary(s => s.Name, _ => 0UL);
        byte[] header = Header(sources, metadata, checksums);
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        stream.Write(header);
        var buffer = new float[(int)Math.Min(ChunkFloats, Math.Max(1, sources.Count == 0 ? 1 : sources.Max(s => s.Length)))];
        foreach (var s in sources)
        {
            var hash = new XxHash3();
            for (long offset = 0; offset < s.Length; offset += buffer.Length)
            {
                var chunk = buffer.AsSpan(0, (int)Math.Min(buffer.Length, s.Length - offset));
                s.Fill(offset, chunk);
                var bytes = MemoryMarshal.AsBytes(chunk);
                hash.Append(bytes);
                stream.Write(bytes);
            }
            checksums[s.Name] = hash.GetCurrentHashAsUInt64();
        }
        byte[] final = Header(sources, metadata, checksums);
        if (final.Length != header.Length) throw new InvalidOperationException("safetensors header changed length");
        stream.Position = 0;
        stream.Write(final);
        stream.Flush(flushToDisk: true);
    }

    private static byte[] Header(IReadOnlyList<Source> sources, IReadOnlyDictionary<string, string>? metadata, Dictionary<string, ulong> checksums)
    {
        var header = new JsonObject();
        var meta = new JsonObject();
        foreach (var (k, v) in metadata ?? new Dictionary<string, string>()) meta[k] = v;
        foreach (var s in sources) meta[ChecksumPrefix + s.Name] = checksums[s.Name].ToString("x16");
        header["__metadata__"] = meta;
        long offset = 0;
        foreach (var s in sources)
        {
            long bytes = s.Length * sizeof(float);
            header[s.Name] = new JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new JsonArray(s.Shape.Select(d => (JsonNode)d).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + bytes),
            };
            offset += bytes;
        }
        byte[] json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;
        var result = new byte[8 + padded];
        BinaryPrimitives.WriteUInt64LittleEndian(result, (ulong)padded);
        json.CopyTo(result, 8);
        result.AsSpan(8 + json.Length).Fill((byte)' ');
        return result;
    }

    /// <summary>Reads every F32 tensor into host arrays (small files: tests, tools).</summary>
    public static Dictionary<string, Entry> Read(string path) => Read(path, out _);

    /// <summary>Reads every F32 tensor and the header's <c>__metadata__</c> strings.</summary>
    public static Dictionary<string, Entry> Read(string path, out IReadOnlyDictionary<string, string> metadata)
    {
        using var file = SafetensorsFile.Open(path);
        metadata = file.Metadata;
        return file.Names.ToDictionary(n => n, n => new Entry(n, file.Shape(n), file.ReadArray(n)));
    }

    internal static void RequireLittleEndian()
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors files are little-endian; this machine is not.");
    }
}

/// <summary>
/// An open safetensors file: the header parsed and checked (64-bit offsets within the file), each tensor read on
/// demand in chunks and its checksum verified. Every problem is a <see cref="UserException"/> naming the file
/// and, where it applies, the tensor.
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    private const long MaxHeaderBytes = 100L << 20;
    private readonly FileStream stream;
    private readonly Dictionary<string, (int[] Shape, long Begin, long End, ulong? Checksum)> tensors = new();

    private SafetensorsFile(string path, FileStream stream)
    {
        Path = path;
        this.stream = stream;
    }

    public string Path { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; private set; } = new Dictionary<string, string>();
    public IEnumerable<string> Names => tensors.Keys;
    public bool Contains(string name) => tensors.ContainsKey(name);
    public int[] Shape(string name) => tensors[name].Shape;

    public static SafetensorsFile Open(string path)
    {
        Safetensors.RequireLittleEndian();
        if (!File.Exists(path)) throw new UserException($"Checkpoint file {path} does not exist.");
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        var file = new SafetensorsFile(path, stream);
        try
        {
            file.ParseHeader();
            return file;
        }
        catch (Exception e) when (e is FormatException or System.Text.Json.JsonException or InvalidOperationException
                                      or ArgumentException or IndexOutOfRangeException or EndOfStreamException or OverflowException)
        {
            stream.Dispose();
            throw new UserException($"Checkpoint file {path} is not a valid safetensors file ({e.Message}). " +
                                    "It is damaged or was not written completely; use another checkpoint.", e);
        }
    }

    private void ParseHeader()
    {
        Span<byte> lengthBytes = stackalloc byte[8];
        stream.ReadExactly(lengthBytes);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > (ulong)(stream.Length - 8) || headerLength > MaxHeaderBytes)
            throw new FormatException($"header length {headerLength} is beyond the end of the file");
        var json = new byte[headerLength];
        stream.ReadExactly(json);
        var header = JsonNode.Parse(json)!.AsObject();
        long dataStart = 8 + (long)headerLength, dataBytes = stream.Length - dataStart;
        var metadata = new Dictionary<string, string>();
        if (header["__metadata__"] is JsonObject meta)
            foreach (var (k, v) in meta) metadata[k] = (string?)v ?? "";
        Metadata = metadata;
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__") continue;
            var o = node!.AsObject();
            if ((string?)o["dtype"] != "F32") throw new FormatException($"tensor {name} is {(string?)o["dtype"]}, only F32 is supported");
            int[] shape = o["shape"]!.AsArray().Select(x => (int)x!).ToArray();
            long begin = (long)o["data_offsets"]![0]!, end = (long)o["data_offsets"]![1]!;
            long count = shape.Aggregate(1L, (a, d) => d < 0 ? throw new FormatException($"tensor {name} has a negative dimension") : checked(a * d));
            if (begin < 0 || end - begin != count * 4 || end > dataBytes)
                throw new FormatException($"tensor {name} has offsets [{begin}, {end}) that do not fit its shape or the file's {dataBytes} data bytes");
            ulong? checksum = metadata.TryGetValue(Safetensors.ChecksumPrefix + name, out var hex)
                ? ulong.Parse(hex, System.Globalization.NumberStyles.HexNumber) : null;
            tensors[name] = (shape, dataStart + begin, dataStart + end, checksum);
        }
    }

    /// <summary>
    /// Streams a tensor's elements to <paramref name="sink"/> chunk by chunk (offset, values); throws once the
    /// whole tensor is read if its checksum does not match, naming the tensor.
    /// </summary>
    public void ReadInto(string name, Action<long, ReadOnlySpan<float>> sink, float[]? buffer = null)
    {
        var (_, begin, end, expected) = tensors[name];
        long count = (end - begin) / 4;
        buffer ??= new float[(int)Math.Clamp(count, 1, Safetensors.ChunkFloats)];
        var hash = new XxHash3();
        stream.Position = begin;
        for (long offset = 0; offset < count; offset += buffer.Length)
        {
            var chunk = buffer.AsSpan(0, (int)Math.Min(buffer.Length, count - offset));
            var bytes = MemoryMarshal.AsBytes(chunk);
            try
            {
                stream.ReadExactly(bytes);
            }
            catch (EndOfStreamException)
            {
                throw new UserException($"Checkpoint file {Path} ends inside tensor '{name}': it was not written completely.");
            }
            hash.Append(bytes);
            sink(offset, chunk);
        }
        if (expected is { } sum && hash.GetCurrentHashAsUInt64() != sum)
            throw new UserException($"Checkpoint file {Path}: tensor '{name}' fails its checksum (the file is corrupted). " +
                                    "Use another checkpoint (checkpoint.old, or an earlier run).");
    }

    /// <summary>Verifies every tensor's checksum without keeping its data.</summary>
    public void Verify()
    {
        var buffer = new float[Safetensors.ChunkFloats / 4];
        foreach (var name in Names) ReadInto(name, (_, _) => { }, buffer);
    }

    public float[] ReadArray(string name)
    {
        var (_, begin, end, _) = tensors[name];
        var data = new float[(end - begin) / 4];
        ReadInto(name, (offset, chunk) => chunk.CopyTo(data.AsSpan((int)offset)));
        return data;
    }

    public void Dispose() => stream.Dispose();
}
