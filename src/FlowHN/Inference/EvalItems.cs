using System.Text.Json;
using FlowHN.Runtime;

namespace FlowHN.Inference;

/// <summary>A cloze item: the text without its last word, and that word with its leading space.</summary>
public sealed record ClozeItem(string Context, string Target);

/// <summary>A multiple-choice item: the context, the candidate continuations, the index of the right one.</summary>
public sealed record ChoiceItem(string Context, string[] Choices, int Gold);

/// <summary>
/// Reads the JSONL files of <c>flowhn eval</c>: one JSON object per line (blank lines skipped). A malformed
/// line is a user error naming the file, the line number and the field.
/// </summary>
public static class EvalItems
{
    /// <summary>Lines <c>{"text": "..."}</c>; the target is the last whitespace-separated word, with its leading space.</summary>
    public static List<ClozeItem> ReadCloze(string path) => Read(path, (o, where) =>
    {
        string text = String(o, "text", where).TrimEnd();
        int split = text.LastIndexOfAny([' ', '\t', '\n', '\r']);
        if (split <= 0 || text[..split].Trim().Length == 0)
            throw new UserException($"{where}: field 'text' needs at least two words (the target is the last one).");
        return new ClozeItem(text[..split], " " + text[(split + 1)..]);
    });

    /// <summary>Lines <c>{"context": "...", "choices": ["...", ...], "gold": i}</c>.</summary>
    public static List<ChoiceItem> ReadChoice(string path) => Read(path, (o, where) =>
    {
        string context = String(o, "context", where);
        if (!o.TryGetProperty("choices", out var array) || array.ValueKind != JsonValueKind.Array)
            throw new UserException($"{where}: field 'choices' is missing or not an array of strings.");
        var choices = array.EnumerateArray().Select((c, i) => c.ValueKind == JsonValueKind.String && c.GetString()!.Length > 0
            ? c.GetString()!
            : throw new UserException($"{where}: field 'choices' item {i} is not a non-empty string.")).ToArray();
        if (choices.Length < 2) throw new UserException($"{where}: field 'choices' needs at least 2 choices, got {choices.Length}.");
        if (!o.TryGetProperty("gold", out var gold) || gold.ValueKind != JsonValueKind.Number || !gold.TryGetInt32(out int index))
            throw new UserException($"{where}: field 'gold' is missing or not an integer.");
        if (index < 0 || index >= choices.Length)
            throw new UserException($"{where}: field 'gold' is {index}, outside 0..{choices.Length - 1}.");
        return new ChoiceItem(context, choices, index);
    });

    private static List<T> Read<T>(string path, Func<JsonElement, string, T> parse)
    {
        if (!File.Exists(path)) throw new UserException($"--data {path} does not exist (a JSONL file is expected).");
        var items = new List<T>();
        int number = 0;
        foreach (string line in File.ReadLines(path))
        {
            number++;
            if (line.Trim().Length == 0) continue;
            string where = $"{path} line {number}";
            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(line);
            }
            catch (JsonException e)
            {
                throw new UserException($"{where}: not valid JSON ({e.Message.Split('.')[0]}).");
            }
            using (document)
            {
                if (document.RootElement.ValueKind != JsonValueKind.Object) throw new UserException($"{where}: expected a JSON object.");
                items.Add(parse(document.RootElement, where));
            }
        }
        if (items.Count == 0) throw new UserException($"{path} holds no items.");
        return items;
    }

    private static string String(JsonElement o, string field, string where) =>
        o.TryGetProperty(field, out var value) && value.ValueKind == JsonValueKind.String
            ? value.GetString()!
            : throw new UserException($"{where}: field '{field}' is missing or not a string.");
}
