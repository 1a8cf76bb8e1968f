using FlowHN.Runtime;

namespace FlowHN.Models;

/// <summary>Which state-space mixer a hybrid's SSM layers (or FlowHN's SSM branch) use: <c>--ssm mamba1|mamba2</c>.</summary>
public enum SsmKind
{
    /// <summary>Mamba-1's selective scan (the paper's).</summary>
    Mamba1,
    /// <summary>Mamba-2's SSD (<see cref="Nn.Mamba2Mixer"/>).</summary>
    Mamba2,
}

/// <summary>The words of <c>--ssm</c>.</summary>
public static class SsmWords
{
    public static IReadOnlyList<string> All { get; } = ["mamba1", "mamba2"];

    public static string Word(SsmKind kind) => kind == SsmKind.Mamba2 ? "mamba2" : "mamba1";

    public static SsmKind Parse(string word) => word switch
    {
        "mamba1" => SsmKind.Mamba1,
        "mamba2" => SsmKind.Mamba2,
        _ => throw new UserException($"Unknown --ssm '{word}'; use mamba1 or mamba2."),
    };

    /// <summary>The mixer an SSM layer of <paramref name="c"/> has.</summary>
    public static MixerKind MixerOf(ModelConfig c) => c.Ssm == SsmKind.Mamba2 ? MixerKind.Mamba2 : MixerKind.Mamba;
}
