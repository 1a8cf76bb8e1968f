using FlowHN.Models.Architectures;
using FlowHN.Runtime;

namespace FlowHN.Models;

/// <summary>
/// Every architecture <c>--arch</c> can name, in the order tables list them. The only place that maps a name to
/// an architecture: add an entry's line here (and its file in Architectures/) and every command, table and test
/// that goes through the registry picks it up.
/// </summary>
public static class ArchitectureRegistry
{
    public static IReadOnlyList<Architecture> All { get; } =
    [
        new FlowHNArchitecture(),
        new TransformerArchitecture(),
        new MambaArchitecture(),
        new Mamba2Architecture(),
        new ShmArchitecture(),
        new JambaArchitecture(),
        new HymbaArchitecture(),
    ];

    public static IReadOnlyList<string> Names { get; } = All.Select(a => a.Name).ToList();

    /// <summary>The architecture called <paramref name="name"/>, or null.</summary>
    public static Architecture? Find(string name) => All.FirstOrDefault(a => a.Name == name);

    /// <summary>The architecture called <paramref name="name"/>; any other name is a user error listing the valid ones.</summary>
    public static Architecture Get(string name) =>
        Find(name) ?? throw new UserException($"Unknown architecture '{name}'; use one of: {string.Join(", ", Names)}.");
}
