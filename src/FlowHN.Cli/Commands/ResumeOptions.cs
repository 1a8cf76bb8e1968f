using System.CommandLine;
using FlowHN.Runtime;
using FlowHN.Training;

namespace FlowHN.Cli.Commands;

/// <summary>
/// --resume continues a run with the options stored in its state.json and config.json. An option given on the
/// command line that differs from the run's is refused, naming each conflict, except those that cannot change
/// the losses (<see cref="SafeToChange"/>). The schedule's horizon (--steps) changes only with --extend.
/// </summary>
public sealed class ResumeOptions(ParseResult parse, string runDir, TrainState state)
{
    public const string SafeToChange = "--log-every, --checkpoint-every, --eval-every, --eval-batches, --stop-after, --recompute, " +
                                       "--no-branch-concurrency, --cache and the device options";

    private readonly List<string> conflicts = [];
    private int? newHorizon;

    private bool Given(Option option) => parse.GetResult(option) is { Implicit: false };

    /// <summary>Records a conflict when <paramref name="option"/> was given with a value the run does not use.</summary>
    public ResumeOptions Same<T>(Option<T> option, T stored) => Same(option, stored, v => EqualityComparer<T>.Default.Equals(v, stored));

    public ResumeOptions Same<T, TStored>(Option<T> option, TStored stored, Func<T, bool> matches)
    {
        if (!Given(option)) return this;
        T value = parse.GetValue(option)!;
        if (!matches(value))
            conflicts.Add($"{option.Name} {Show(value)} (the run uses {Show(stored)})");
        return this;
    }

    /// <summary>--steps moves the schedule's horizon: refused unless --extend asks for it.</summary>
    public void Horizon(Option<int> steps, bool extend)
    {
        if (!Given(steps)) return;
        int value = parse.GetValue(steps);
        if (value == state.Options.Steps) return;
        if (!extend)
        {
            conflicts.Add($"--steps {value} (the run's schedule ends at step {state.Options.Steps}; add --extend to change it, " +
                          "which changes the learning rate from here on)");
            return;
        }
        if (value <= state.Step)
            throw new UserException($"--steps {value} with --extend must be beyond the checkpoint's step {state.Step}.");
        newHorizon = value;
    }

    public void ThrowIfAny()
    {
        if (conflicts.Count == 0) return;
        throw new UserException($"--resume continues {runDir} with the options it was started with, and these differ: " +
                                $"{string.Join("; ", conflicts)}. Drop them to use the run's values, or start a new run in another --out. " +
                                $"Safe to change on resume: {SafeToChange}.");
    }

    /// <summary>The run's stored options, with the safe ones given on the command line and the extended horizon.</summary>
    public TrainOptions Merge(TrainOptions given, Option<int> evalEvery, Option<int> evalBatches, Option<int> checkpointEvery,
        Option<int> logEvery, TextWriter console)
    {
        var o = state.Options with { Data = state.Options.Data ?? given.Data };
        if (Given(evalEvery)) o = o with { EvalEvery = given.EvalEvery };
        if (Given(evalBatches)) o = o with { EvalBatches = given.EvalBatches };
        if (Given(checkpointEvery)) o = o with { CheckpointEvery = given.CheckpointEvery };
        if (Given(logEvery)) o = o with { LogEvery = given.LogEvery };
        if (newHorizon is { } h)
        {
            console.WriteLine($"--extend: the schedule's horizon moves from step {state.Options.Steps} to {h}; the learning rate after step " +
                              $"{state.Step} differs from the original schedule's, so the run no longer matches an uninterrupted {state.Options.Steps}-step run.");
            o = o with { Steps = h };
        }
        return o;
    }

    private static string Show<T>(T value) => value switch
    {
        string[] names => string.Join(" ", names),
        IEnumerable<string> names => string.Join(" ", names),
        _ => CliOption.Format(value),
    };
}
