namespace FlowHN.Runtime;

/// <summary>
/// The stream priorities a CUDA context schedules by. A greater priority is a lower number: <see cref="Least"/> is
/// the lowest (0 on current devices, which is also what a stream gets unless asked for more) and
/// <see cref="Greatest"/> the highest (e.g. -5). When the two are equal the device has one level and a priority
/// changes nothing.
/// </summary>
public sealed record StreamPriorityRange(int Least, int Greatest)
{
    public bool HasLevels => Greatest != Least;

    public override string ToString() => HasLevels ? $"{Least} (lowest) to {Greatest} (highest)" : $"{Least} only";
}
