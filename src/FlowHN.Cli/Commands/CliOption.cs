using System.CommandLine;

namespace FlowHN.Cli.Commands;

/// <summary>An option with a description and a default that `--help` shows.</summary>
public static class CliOption
{
    public static Option<T> Create<T>(string name, string description, T defaultValue) =>
        new(name) { Description = description, DefaultValueFactory = _ => defaultValue };
}
