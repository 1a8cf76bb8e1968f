namespace FlowHN.Runtime;

/// <summary>
/// The stream priorities a CUDA context schedules by. A greater priority is a lower number: streams are created at
/// <see cref="Least"/> (the default, usually 0) unless asked for more, and <see cref="Greatest"/> is the highest
/// (e.g. -5). When the two are equal the device has one level and a priority changes nothing.
/// </summary>
public sealed record StreamPriorityRange(int Least, int Greatest)
{
    public bool HasLevels => Greatest != Least;

    public override string ToString() => HasLevels ? $"{Least} (default) to {Greatest} (highest)" : $"{Least} only";
}
