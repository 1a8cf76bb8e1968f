using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using FlowHN.Runtime;

namespace FlowHN.Data;

/// <summary>Documents and tokens in one split of a prepared corpus.</summary>
public sealed record SplitSummary(int Documents, long Tokens);

/// <summary>What <see cref="CorpusPreparer.Prepare"/> wrote, in a form a CLI can print.</summary>
public sealed record PrepareSummary(string OutputDirectory, string Tokenizer, int VocabSize, SplitSummary Train, SplitSummary Validation)
{
    /// <summary>Problems worth a line that did not stop the preparation (invalid UTF-8).</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    public static PrepareSummary From(string directory, CorpusMeta meta) => new(
        directory, meta.Tokenizer, meta.VocabSize,
        new SplitSummary(meta.Train.Documents.Count, meta.Train.Tokens),
        new SplitSummary(meta.Validation.Documents.Count, meta.Validation.Tokens));

    public override string ToString() =>
        $"{OutputDirectory}: tokenizer {Tokenizer} (vocab {VocabSize}); " +
        $"train {Train.Documents} documents, {Train.Tokens:N0} tokens; " +
        $"validation {Validation.Documents} documents, {Validation.Tokens:N0} tokens";
}

/// <summary>
/// Turns folders of .txt files into train.bin, val.bin and meta.json. Each file is one document; whole
/// documents are held out for validation (by name), so validation text is never seen in training, not even
/// in part. Every document is followed by the end-of-text token.
/// </summary>
public static class CorpusPreparer
{
    /// <summary>
    /// Books held out by default: whole novels by authors who also appear in training, so validation loss
    /// measures unseen text in familiar styles rather than memorisation.
    /// </summary>
    public static IReadOnlyList<string> DefaultValidationBooks { get; } = ["austen-persuasion", "chesterton-thursday"];

    public static PrepareSummary Prepare(IEnumerable<string> inputs, ITokenizer tokenizer, string outDir, IReadOnlyCollection<string> validationNames)
    {
        var documents = FindDocuments(inputs);
        var heldOut = SplitNames(documents, validationNames);

        var encoded = EncodeAll(documents, tokenizer);
        var warnings = documents.Select((f, i) => (f, encoded[i].File.InvalidSequences)).Where(x => x.InvalidSequences > 0)
            .Select(x => $"warning: '{x.f.FullName}' has {x.InvalidSequences} byte sequence(s) that are not valid UTF-8; each was read as U+FFFD " +
                         "(convert the file to UTF-8 to keep its characters)").ToList();

        var train = new List<int>();
        var validation = new List<int>();
        var trainDocs = new List<CorpusDocument>();
        var validationDocs = new List<CorpusDocument>();
        for (var i = 0; i < documents.Count; i++)
        {
            var file = documents[i];
            var name = DocumentName(file);
            var (tokens, docs) = heldOut.Contains(name) ? (validation, validationDocs) : (train, trainDocs);
            tokens.AddRange(encoded[i].Tokens);
            tokens.Add(tokenizer.EndOfText);
            docs.Add(new CorpusDocument(name, file.Name, file.Length, file.LastWriteTimeUtc, encoded[i].Tokens.Length + 1, encoded[i].File.Hash));
        }

        Directory.CreateDirectory(outDir);
        // Remove the old description first: if we stop half way, the folder no longer claims to be prepared.
        File.Delete(Path.Combine(outDir, CorpusMeta.FileName));
        ShardWriter.Write(Path.Combine(outDir, CorpusMeta.TrainFile), tokenizer.Name, tokenizer.VocabSize, CollectionsMarshal.AsSpan(train));
        ShardWriter.Write(Path.Combine(outDir, CorpusMeta.ValidationFile), tokenizer.Name, tokenizer.VocabSize, CollectionsMarshal.AsSpan(validation));
        var meta = new CorpusMeta(
            ShardFormat.Version, tokenizer.Name, tokenizer.VocabSize, tokenizer.EndOfText,
            [.. heldOut.Order(StringComparer.Ordinal)],
            new CorpusSplit(CorpusMeta.TrainFile, train.Count, trainDocs),
            new CorpusSplit(CorpusMeta.ValidationFile, validation.Count, validationDocs));
        meta.Save(outDir);
        return PrepareSummary.From(outDir, meta) with { Warnings = warnings };
    }

    /// <summary>
    /// The .txt files named by <paramref name="inputs"/> (files, or folders whose top-level .txt files are
    /// taken), in a stable order: inputs as given, files of a folder sorted by name.
    /// </summary>
    public static IReadOnlyList<FileInfo> FindDocuments(IEnumerable<string> inputs)
    {
        var files = new List<FileInfo>();
        var names = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var input in inputs)
        {
            IEnumerable<FileInfo> found;
            if (Directory.Exists(input))
            {
                found = new DirectoryInfo(input).EnumerateFiles("*.txt", SearchOption.TopDirectoryOnly)
                    .OrderBy(f => f.Name, StringComparer.Ordinal);
            }
            else if (File.Exists(input))
            {
                if (!input.EndsWith(".txt", StringComparison.OrdinalIgnoreCase))
                {
                    throw new UserException($"'{input}' is not a .txt file. Give .txt files or folders that contain them.");
                }

                found = [new FileInfo(input)];
            }
            else
            {
                throw new UserException($"Input '{input}' does not exist. Give .txt files or folders that contain them (for example data/sample).");
            }

            foreach (var file in found)
            {
                // Documents are identified by name (validation hold-out, meta.json), so names must be unique.
                if (names.TryGetValue(DocumentName(file), out var first))
                {
                    throw new UserException($"Two documents are named '{DocumentName(file)}': '{first}' and '{file.FullName}'. Rename one of them.");
                }

                names.Add(DocumentName(file), file.FullName);
                files.Add(file);
            }
        }

        if (files.Count == 0)
        {
            throw new UserException($"No .txt files found in {string.Join(", ", inputs.Select(i => $"'{i}'"))}. Run tools/fetch-corpus.sh or point at data/sample.");
        }

        return files;
    }

    public static string DocumentName(FileInfo file) => Path.GetFileNameWithoutExtension(file.Name);

    internal static string NameWithoutTxt(string name) =>
        name.EndsWith(".txt", StringComparison.OrdinalIgnoreCase) ? name[..^4] : name;

    /// <summary>The validation names, every one of which must name a document ("x.txt" is accepted for "x").</summary>
    private static HashSet<string> SplitNames(IReadOnlyList<FileInfo> documents, IReadOnlyCollection<string> validationNames)
    {
        var wanted = validationNames
            .Select(NameWithoutTxt)
            .ToHashSet(StringComparer.Ordinal);
        var available = documents.Select(DocumentName).ToList();
        var sample = string.Join(", ", available.Take(8)) + (available.Count > 8 ? ", ..." : "");
        if (wanted.Count == 0)
        {
            throw new UserException($"No validation documents were named. Pass --val with one or more document names (available: {sample}).");
        }

        var missing = wanted.Where(n => !available.Contains(n, StringComparer.Ordinal)).Order(StringComparer.Ordinal).ToList();
        if (missing.Count > 0)
        {
            throw new UserException($"Validation document(s) {string.Join(", ", missing)} not found among the inputs. " +
                $"Pass --val with names of documents to hold out (available: {sample}).");
        }

        if (wanted.Count == available.Count)
        {
            throw new UserException("Every document is held out for validation, which leaves nothing to train on. Name fewer documents with --val.");
        }

        return wanted;
    }

    /// <summary>
    /// Tokenizes documents in parallel into their own arrays, so the result (and the error reported, that of
    /// the first bad document in listing order) does not depend on thread timing.
    /// </summary>
    private static (int[] Tokens, TextFile File)[] EncodeAll(IReadOnlyList<FileInfo> documents, ITokenizer tokenizer)
    {
        var encoded = new (int[], TextFile)[documents.Count];
        var errors = new Exception?[documents.Count];
        Parallel.For(0, documents.Count, i =>
        {
            try
            {
                encoded[i] = EncodeDocument(documents[i], tokenizer);
            }
            catch (Exception e)
            {
                errors[i] = e;
            }
        });
        if (errors.FirstOrDefault(e => e is not null) is { } error)
        {
            ExceptionDispatchInfo.Throw(error);
        }

        return encoded;
    }

    private static (int[], TextFile) EncodeDocument(FileInfo file, ITokenizer tokenizer)
    {
        string text;
        TextFile read;
        try
        {
            read = TextFile.Read(file.FullName);
            // Line endings are not content: the same book with CRLF must give the same tokens.
            text = read.Text.Replace("\r\n", "\n", StringComparison.Ordinal);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UserException($"Could not read '{file.FullName}': {e.Message}", e);
        }

        var tokens = tokenizer.Encode(text);
        var at = Array.IndexOf(tokens, tokenizer.EndOfText);
        if (at >= 0)
        {
            var marker = tokenizer.EndOfText == 0 ? "a NUL character" : "the end-of-text marker";
            throw new UserException($"'{file.FullName}' contains {marker} (token {tokenizer.EndOfText} at position {at}), which would split it into two documents. Remove it from the text.");
        }

        return (tokens, read);
    }
}
