using FlowHN.Runtime;

namespace FlowHN.Data;

/// <summary>
/// Training and validation tokens for a run, from either a prepared folder (meta.json + shards) or a folder
/// of .txt files, which is tokenized once into a cache folder and reused while the text files stay the same.
/// </summary>
public sealed class DataSource
{
    private DataSource(string directory, CorpusMeta meta, Shard train, Shard validation, PrepareSummary? prepared)
    {
        Directory = directory;
        Meta = meta;
        Train = train.Tokens;
        Validation = validation.Tokens;
        Prepared = prepared;
    }

    /// <summary>The folder the shards were read from (the cache folder for text input).</summary>
    public string Directory { get; }
    public CorpusMeta Meta { get; }
    public string TokenizerName => Meta.Tokenizer;
    public int VocabSize => Meta.VocabSize;
    public int EndOfText => Meta.EndOfText;
    public int[] Train { get; }
    public int[] Validation { get; }

    /// <summary>What was tokenized during this <see cref="Open"/>; null when existing shards were used.</summary>
    public PrepareSummary? Prepared { get; }

    /// <summary>True when existing shards were read (a prepared folder or a current cache) and nothing was tokenized.</summary>
    public bool FromCache => Prepared is null;

    /// <param name="path">A prepared folder, or a folder of .txt files.</param>
    /// <param name="tokenizerName">The tokenizer the model is built for; prepared data must match it.</param>
    /// <param name="cacheDir">Where text folders are prepared; each gets its own subfolder.</param>
    /// <param name="validationNames">
    /// Documents to hold out. For text input, null means <see cref="CorpusPreparer.DefaultValidationBooks"/>;
    /// for a prepared folder, null accepts its split and a value must match it.
    /// </param>
    public static DataSource Open(string path, string tokenizerName, string cacheDir, IReadOnlyCollection<string>? validationNames = null)
    {
        var tokenizer = Tokenizers.Create(tokenizerName);
        if (!System.IO.Directory.Exists(path))
        {
            throw new UserException($"Data folder '{path}' does not exist. Point --data at a folder of .txt files (for example data/sample) or at a prepared folder with meta.json.");
        }

        if (File.Exists(Path.Combine(path, CorpusMeta.FileName)))
        {
            var meta = CorpusMeta.Load(path);
            CheckPreparedMatches(path, meta, tokenizer, validationNames);
            return OpenPrepared(path, meta, tokenizer, prepared: null);
        }

        if (!System.IO.Directory.EnumerateFiles(path, "*.txt").Any())
        {
            throw new UserException($"Data folder '{path}' has neither a meta.json nor any .txt files. Run tools/fetch-corpus.sh, use data/sample, or run `flowhn prepare`.");
        }

        var names = validationNames ?? CorpusPreparer.DefaultValidationBooks;
        var cache = Path.Combine(cacheDir, $"{Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(path)))}-{tokenizer.Name}");
        if (CacheIsCurrent(cache, path, tokenizer, names) is { } cached)
        {
            return cached;
        }

        var summary = CorpusPreparer.Prepare([path], tokenizer, cache, names);
        return OpenPrepared(cache, CorpusMeta.Load(cache), tokenizer, summary);
    }

    private static void CheckPreparedMatches(string path, CorpusMeta meta, ITokenizer tokenizer, IReadOnlyCollection<string>? validationNames)
    {
        if (meta.Tokenizer != tokenizer.Name)
        {
            throw new UserException($"The data in '{path}' was prepared with the '{meta.Tokenizer}' tokenizer, but '{tokenizer.Name}' was requested. " +
                $"Point --data at data prepared with `flowhn prepare --tokenizer {tokenizer.Name}` (a new train run may instead use --tokenizer {meta.Tokenizer}).");
        }

        if (validationNames is not null && !SameNames(meta.ValidationNames, validationNames))
        {
            throw new UserException($"The data in '{path}' holds out {string.Join(", ", meta.ValidationNames)} for validation, not {string.Join(", ", validationNames)}. " +
                "Drop --val to use the prepared split, or re-run `flowhn prepare` with the documents you want.");
        }
    }

    private static DataSource OpenPrepared(string directory, CorpusMeta meta, ITokenizer tokenizer, PrepareSummary? prepared)
    {
        // The model's vocabulary comes from here: it must be the tokenizer's (the shards are checked against it too).
        if (meta.VocabSize != tokenizer.VocabSize || meta.EndOfText < 0 || meta.EndOfText >= tokenizer.VocabSize)
        {
            throw new UserException($"'{Path.Combine(directory, CorpusMeta.FileName)}' gives a vocabulary of {meta.VocabSize} (end of text {meta.EndOfText}), " +
                $"but the '{tokenizer.Name}' tokenizer has {tokenizer.VocabSize} tokens. The file was edited or damaged; re-run `flowhn prepare` to rebuild it.");
        }

        var train = Shard.Open(Path.Combine(directory, meta.Train.File), tokenizer.Name, tokenizer.VocabSize);
        var validation = Shard.Open(Path.Combine(directory, meta.Validation.File), tokenizer.Name, tokenizer.VocabSize);
        if (train.Tokens.Length != meta.Train.Tokens || validation.Tokens.Length != meta.Validation.Tokens)
        {
            throw new UserException($"The shards in '{directory}' do not match its meta.json (token counts differ). Re-run `flowhn prepare` to rebuild them.");
        }

        return new DataSource(directory, meta, train, validation, prepared);
    }

    /// <summary>The cached data when it was made by this tokenizer, with this split, from these exact files.</summary>
    private static DataSource? CacheIsCurrent(string cache, string textDir, ITokenizer tokenizer, IReadOnlyCollection<string> names)
    {
        if (!File.Exists(Path.Combine(cache, CorpusMeta.FileName)))
        {
            return null;
        }

        try
        {
            var meta = CorpusMeta.Load(cache);
            // Sizes first (cheap), then a hash of every file's bytes: an edit that keeps the size and restores the
            // time is still seen.
            var files = CorpusPreparer.FindDocuments([textDir]);
            var recorded = meta.Documents.Select(d => (d.File, d.Bytes, d.Hash)).Order().ToList();
            var same = meta.Tokenizer == tokenizer.Name && meta.VocabSize == tokenizer.VocabSize
                && SameNames(meta.ValidationNames, names)
                && files.Select(f => (f.Name, f.Length)).Order().SequenceEqual(recorded.Select(r => (r.File, r.Bytes)))
                && files.Select(f => (f.Name, f.Length, (string?)TextFile.HashOfFile(f.FullName))).Order().SequenceEqual(recorded);
            return same ? OpenPrepared(cache, meta, tokenizer, prepared: null) : null;
        }
        catch (UserException)
        {
            // A damaged cache is rebuilt, not reported: it is ours, not the user's.
            return null;
        }
    }

    private static bool SameNames(IEnumerable<string> a, IEnumerable<string> b) =>
        a.Select(CorpusPreparer.NameWithoutTxt).ToHashSet(StringComparer.Ordinal).SetEquals(b.Select(CorpusPreparer.NameWithoutTxt));
}
