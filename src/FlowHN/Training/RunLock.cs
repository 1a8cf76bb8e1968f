using System.Diagnostics;
using FlowHN.Runtime;

namespace FlowHN.Training;

/// <summary>
/// <c>run.lock</c> in a run folder: the pid, host and start time of the process writing it, so a second writer
/// is refused with a clear message. A lock whose process is gone (same host, no process with that pid and start
/// time) is stale and taken over.
/// </summary>
public sealed class RunLock : IDisposable
{
    public const string FileName = "run.lock";
    private readonly string path;
    private readonly string content;

    private RunLock(string path, string content)
    {
        this.path = path;
        this.content = content;
    }

    /// <summary>The folder this lock created (removed again if the run leaves it empty, e.g. when the data is missing).</summary>
    private string? createdFolder;

    /// <summary>Line a stale lock leaves for the log, or null.</summary>
    public string? TookOverFrom { get; private init; }

    public static RunLock Acquire(string runDir)
    {
        if (File.Exists(runDir)) throw new UserException($"--out {runDir} is a file, not a folder. Choose a folder for the run.");
        bool created = !Directory.Exists(runDir);
        Directory.CreateDirectory(runDir);
        string path = Path.Combine(runDir, FileName);
        using var me = Process.GetCurrentProcess();
        string content = $"{Environment.ProcessId} {Environment.MachineName} {me.StartTime.ToUniversalTime().Ticks}";
        string? staleLine = null;
        for (int attempt = 0; attempt < 2; attempt++)
        {
            try
            {
                using (var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write))
                using (var writer = new StreamWriter(stream))
                    writer.Write(content);
                return new RunLock(path, content) { TookOverFrom = staleLine, createdFolder = created ? runDir : null };
            }
            catch (IOException) when (File.Exists(path))
            {
                string holder = ReadHolder(path);
                var parts = holder.Split(' ');
                if (parts.Length == 3 && int.TryParse(parts[0], out int pid) && long.TryParse(parts[2], out long ticks)
                    && parts[1] == Environment.MachineName && !IsAlive(pid, ticks))
                {
                    staleLine = $"took over a stale {path} (process {pid} on {parts[1]} is gone)";
                    File.Delete(path);
                    continue;
                }
                string who = parts.Length == 3 ? $"process {parts[0]} on {parts[1]}" : "another process";
                throw new UserException($"{runDir} is in use by {who} ({path}). Wait for it to finish or use another --out; " +
                                        $"if that process is gone (another machine), delete {path}.");
            }
        }
        throw new UserException($"Could not take {path}: another process keeps creating it.");
    }

    private static string ReadHolder(string path)
    {
        try
        {
            return File.ReadAllText(path).Trim();
        }
        catch (IOException)
        {
            return "";
        }
    }

    private static bool IsAlive(int pid, long startTicks)
    {
        try
        {
            using var p = Process.GetProcessById(pid);
            // Start times are derived from boot time and uptime and wobble by milliseconds between readers; a
            // reused pid would have started at a clearly different moment.
            return !p.HasExited && Math.Abs(p.StartTime.ToUniversalTime().Ticks - startTicks) < TimeSpan.TicksPerSecond;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    public void Dispose()
    {
        // Only our own lock is removed (a stale-lock takeover by another process must not be undone).
        if (File.Exists(path) && ReadHolder(path) == content) File.Delete(path);
        if (createdFolder is not null && Directory.Exists(createdFolder) && !Directory.EnumerateFileSystemEntries(createdFolder).Any())
            Directory.Delete(createdFolder);
    }
}
