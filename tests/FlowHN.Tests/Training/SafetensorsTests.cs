using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using FlowHN.Runtime;
using FlowHN.Training;

namespace FlowHN.Tests.Training;

public class SafetensorsTests
{
    [Fact]
    public void EveryTensorCarriesAChecksumThatTheReaderVerifies()
    {
        using var dir = new TempFolder();
        string path = dir.File("t.safetensors");
        float[] big = Enumerable.Range(0, 1000).Select(i => i * 0.5f).ToArray();
        Safetensors.Write(path, [new Safetensors.Entry("a", [1000], big), new Safetensors.Entry("b.weight", [2], [7, 8])]);
        using (var file = SafetensorsFile.Open(path))
        {
            Assert.Equal(XxHash3.HashToUInt64(System.Runtime.InteropServices.MemoryMarshal.AsBytes(big.AsSpan())).ToString("x16"),
                file.Metadata["xxh3.a"]);
            Assert.Equal(big, file.ReadArray("a"));
        }

        // Flip one bit in the middle of tensor 'a': the header still parses, the checksum names the tensor.
        var bytes = File.ReadAllBytes(path);
        long headerEnd = 8 + (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        bytes[headerEnd + 2000] ^= 0x10;
        File.WriteAllBytes(path, bytes);
        using var damaged = SafetensorsFile.Open(path);
        Assert.Equal([7f, 8f], damaged.ReadArray("b.weight"));
        var e = Assert.Throws<UserException>(() => damaged.ReadArray("a"));
        Assert.Contains("tensor 'a' fails its checksum", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void ATruncatedFileIsRefusedNamingTheFile()
    {
        using var dir = new TempFolder();
        string path = dir.File("t.safetensors");
        Safetensors.Write(path, [new Safetensors.Entry("a", [64], new float[64])]);
        using (var stream = new FileStream(path, FileMode.Open)) stream.SetLength(stream.Length - 4);
        var e = Assert.Throws<UserException>(() => SafetensorsFile.Open(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("tensor a", e.Message);
    }

    [Fact]
    public void TensorsStreamInChunksLargerThanOneBuffer()
    {
        using var dir = new TempFolder();
        string path = dir.File("t.safetensors");
        int n = Safetensors.ChunkFloats + 123; // two chunks, the second partial
        var data = new float[n];
        for (int i = 0; i < n; i++) data[i] = i % 977;
        Safetensors.Write(path, [new Safetensors.Entry("x", [n], data)]);
        using var file = SafetensorsFile.Open(path);
        Assert.Equal(data, file.ReadArray("x"));
    }

    /// <summary>
    /// A sparse file of 4.4 GB: a zero tensor of 1.1e9 floats, then a small one whose data starts beyond 4 GB, so
    /// any 32-bit offset or whole-file read would fail. Only the header and the last tensor take disk space.
    /// </summary>
    [Fact]
    public void OffsetsBeyondFourGigabytesRead()
    {
        using var dir = new TempFolder();
        string path = dir.File("huge.safetensors");
        const long zeros = 1_100_000_000;
        float[] tail = [1.5f, -2.25f, 3e30f];
        var tailBytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(tail.AsSpan()).ToArray();
        string json = $"{{\"__metadata__\":{{\"xxh3.tail\":\"{XxHash3.HashToUInt64(tailBytes):x16}\"}}," +
                      $"\"zeros\":{{\"dtype\":\"F32\",\"shape\":[{zeros}],\"data_offsets\":[0,{zeros * 4}]}}," +
                      $"\"tail\":{{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[{zeros * 4},{zeros * 4 + 12}]}}}}";
        var header = Encoding.UTF8.GetBytes(json.PadRight((json.Length + 7) / 8 * 8));
        using (var stream = new FileStream(path, FileMode.Create))
        {
            var length = new byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
            stream.Write(length);
            stream.Write(header);
            stream.Position = 8 + header.Length + zeros * 4; // skipped bytes read as zeros and take no space
            stream.Write(tailBytes);
        }
        Assert.True(new FileInfo(path).Length > 4L << 30);
        using var file = SafetensorsFile.Open(path);
        Assert.Equal([(int)zeros], file.Shape("zeros"));
        Assert.Equal(tail, file.ReadArray("tail"));
        // The first chunk of the big tensor streams too (the whole tensor would be 4.4 GB of host memory).
        float first = -1;
        var e = Record.Exception(() => file.ReadInto("zeros", (offset, chunk) =>
        {
            first = chunk[0];
            throw new OperationCanceledException();
        }));
        Assert.IsType<OperationCanceledException>(e);
        Assert.Equal(0f, first);
    }
}
