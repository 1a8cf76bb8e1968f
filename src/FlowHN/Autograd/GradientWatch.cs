using FlowHN.Runtime;

namespace FlowHN.Autograd;

/// <summary>
/// Tells, during a backward, when groups of parameters (the buckets of a gradient all-reduce) have their final
/// gradients, so their collective can start while the rest of the backward runs. While the watch is on the
/// <see cref="Tape"/>, every op notes the parameters among its inputs with the tape position its backward gets
/// (a recomputed segment, whose forward runs without a tape, notes the position of the one backward that
/// recomputes it). Every backward that adds to a parameter's gradient therefore sits at or after the parameter's
/// first noted position, and the replay runs positions from the last down: once it is below a group's earliest
/// position, nothing more adds to that group. Parameters no op used have no gradient to wait for.
/// </summary>
public sealed class GradientWatch
{
    private readonly Dictionary<Parameter, int> groupOf = new(ReferenceEqualityComparer.Instance);
    private readonly int[] firstUse;
    private readonly bool[] fired;
    private readonly Action<int, IReadOnlyList<DeviceStream>> ready;
    private int[] order = [];
    private int next;

    /// <param name="groups">the parameters of each group (a parameter in one group at most).</param>
    /// <param name="ready">called once per group and backward with the group's index and the streams the backward
    /// has queued work on so far (the group's gradients are final once their queued work is done).</param>
    public GradientWatch(IReadOnlyList<IReadOnlyList<Parameter>> groups, Action<int, IReadOnlyList<DeviceStream>> ready)
    {
        for (int g = 0; g < groups.Count; g++)
            foreach (var p in groups[g]) groupOf.Add(p, g);
        firstUse = new int[groups.Count];
        fired = new bool[groups.Count];
        this.ready = ready;
        Reset();
    }

    /// <summary>Forgets the last forward's uses (the tape calls it when the watch is put on).</summary>
    internal void Reset()
    {
        Array.Fill(firstUse, int.MaxValue); // unused: nothing to wait for
        Array.Fill(fired, false);
        order = [];
        next = 0;
    }

    internal void NoteUse(Parameter p, int position)
    {
        if (!groupOf.TryGetValue(p, out int g)) return;
        if (fired[g]) throw new InvalidOperationException($"Parameter {p.Name} is used after its gradients were declared final.");
        firstUse[g] = Math.Min(firstUse[g], position);
    }

    /// <summary>The outermost replay starts: groups fire in the order the replay passes their first use.</summary>
    internal void BeginReplay()
    {
        order = Enumerable.Range(0, firstUse.Length).OrderByDescending(g => firstUse[g]).ThenBy(g => g).ToArray();
        next = 0;
    }

    /// <summary>The replay is about to run position <paramref name="position"/>: every later one has run.</summary>
    internal void Before(int position, IReadOnlyList<DeviceStream> streams)
    {
        while (next < order.Length && firstUse[order[next]] > position) Fire(order[next++], streams);
    }

    /// <summary>The replay has run every position: the remaining groups are final.</summary>
    internal void EndReplay(IReadOnlyList<DeviceStream> streams)
    {
        while (next < order.Length) Fire(order[next++], streams);
    }

    private void Fire(int group, IReadOnlyList<DeviceStream> streams)
    {
        fired[group] = true;
        ready(group, streams);
    }
}
