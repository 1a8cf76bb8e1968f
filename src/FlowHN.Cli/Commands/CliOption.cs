using System.CommandLine;
using System.Globalization;

namespace FlowHN.Cli.Commands;

/// <summary>An option with a description and a default that `--help` shows, and checks of its range at parse time.</summary>
public static class CliOption
{
    public static Option<T> Create<T>(string name, string description, T defaultValue) =>
        new(name) { Description = description, DefaultValueFactory = _ => defaultValue };

    /// <summary>An option whose value must pass <paramref name="valid"/>; otherwise one line: "NAME must be RANGE (got V)."</summary>
    public static Option<T> Create<T>(string name, string description, T defaultValue, Func<T, bool> valid, string range) =>
        Check(Create(name, description, defaultValue), valid, range);

    public static Option<T> Check<T>(Option<T> option, Func<T, bool> valid, string range)
    {
        option.Validators.Add(result =>
        {
            T value;
            try
            {
                value = result.GetValueOrDefault<T>();
            }
            catch (InvalidOperationException)
            {
                return; // not a T at all: the parser has reported that already
            }
            if (!valid(value)) result.AddError($"{option.Name} must be {range} (got {Format(value)}).");
        });
        return option;
    }

    /// <summary>
    /// An option parsed once, when the command line is read, by <paramref name="tryParse"/> (null: not valid);
    /// otherwise one line: "NAME must be RANGE (got V)."
    /// </summary>
    public static Option<T> Parsed<T>(string name, string description, T defaultValue, Func<string, T?> tryParse, string range) where T : class =>
        new(name)
        {
            Description = description,
            DefaultValueFactory = _ => defaultValue,
            CustomParser = result =>
            {
                string text = string.Join(" ", result.Tokens.Select(t => t.Value));
                if (tryParse(text) is { } value) return value;
                result.AddError($"{name} must be {range} (got {text}).");
                return null;
            },
        };

    /// <summary>Checks that a value is one of <paramref name="allowed"/>.</summary>
    public static Option<string> OneOf(Option<string> option, IReadOnlyCollection<string> allowed) =>
        Check(option, v => allowed.Contains(v), "one of " + string.Join(", ", allowed));

    public static string Format<T>(T value) => value switch
    {
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        null => "nothing",
        _ => value.ToString() ?? "",
    };

    public static bool Positive(int v) => v > 0;
    public static bool NonNegative(int v) => v >= 0;
    public static bool Positive(double v) => double.IsFinite(v) && v > 0;
    public static bool NonNegative(double v) => double.IsFinite(v) && v >= 0;
    public static bool Fraction(double v) => double.IsFinite(v) && v >= 0 && v <= 1;
}
