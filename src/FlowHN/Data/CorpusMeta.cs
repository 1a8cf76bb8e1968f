using System.Text.Json;
using System.Text.Json.Serialization;
using FlowHN.Runtime;

namespace FlowHN.Data;

/// <summary>
/// meta.json next to train.bin and val.bin: which tokenizer made the shards, which documents went where, and
/// the size and time of every source file, so a cache can tell whether the text changed since.
/// </summary>
public sealed record CorpusMeta(
    int Format,
    string Tokenizer,
    int VocabSize,
    int EndOfText,
    IReadOnlyList<string> ValidationNames,
    CorpusSplit Train,
    CorpusSplit Validation)
{
    public const string FileName = "meta.json";
    public const string TrainFile = "train.bin";
    public const string ValidationFile = "val.bin";

    [JsonIgnore]
    public IEnumerable<CorpusDocument> Documents => Train.Documents.Concat(Validation.Documents);

    /// <summary>Written through a temporary file and a rename, like the shards.</summary>
    public void Save(string directory)
    {
        var path = Path.Combine(directory, FileName);
        var tmp = ShardWriter.TemporaryPath(path);
        File.WriteAllText(tmp, JsonSerializer.Serialize(this, CorpusMetaJson.Default.CorpusMeta));
        File.Move(tmp, path, overwrite: true);
    }

    public static CorpusMeta Load(string directory)
    {
        var path = Path.Combine(directory, FileName);
        try
        {
            var meta = JsonSerializer.Deserialize(File.ReadAllText(path), CorpusMetaJson.Default.CorpusMeta);
            if (meta?.Tokenizer is null || meta.Train?.Documents is null || meta.Validation?.Documents is null
                || meta.ValidationNames is null)
            {
                throw new JsonException("required fields are missing");
            }

            return meta;
        }
        catch (JsonException e)
        {
            throw new UserException($"'{path}' is not a valid FlowHN corpus description ({e.Message}). Re-run `flowhn prepare` to rebuild it.", e);
        }
    }
}

/// <summary>One shard of a prepared corpus and the documents it holds, in order.</summary>
public sealed record CorpusSplit(string File, long Tokens, IReadOnlyList<CorpusDocument> Documents);

/// <summary>
/// A source text file: its name without extension, file name, size and time, and its token count (including
/// the end-of-text token that follows it, so the counts of a split add up to the split's total), and the XXH3-64
/// hash of its bytes (null in folders prepared by older builds), which decides whether a cache is current.
/// </summary>
public sealed record CorpusDocument(string Name, string File, long Bytes, DateTime ModifiedUtc, long Tokens, string? Hash = null);

/// <summary>Source-generated serializer: works in trimmed and native-AOT builds, where reflection is off.</summary>
[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(CorpusMeta))]
internal sealed partial class CorpusMetaJson : JsonSerializerContext;
