using System.Runtime.InteropServices;

namespace LongCtx.Model;

/// <summary>
/// Whether a file may be written at a path: a new name in an existing directory, or a regular file to replace. A
/// file is written under a temporary name and renamed into place (<see cref="SafetensorsWriter"/>), and that rename
/// would replace a symbolic link or a device node instead of writing through it; a directory cannot be replaced at
/// all. Checked before a long run, so a bad path fails at once, not after the work.
/// </summary>
public static partial class OutputFile
{
    /// <summary>What is wrong with writing a file at <paramref name="path"/>, or null when nothing is.</summary>
    public static string? Problem(string path)
    {
        string full = Path.GetFullPath(path);
        string? dir = Path.GetDirectoryName(full);
        if (dir is not null && !Directory.Exists(dir)) return $"directory {dir} does not exist";
        var info = new FileInfo(full);
        if (info.LinkTarget is { } target) return $"is a symbolic link (to {target}): give the file's own path or a new one";
        if (Directory.Exists(full)) return "is a directory: give a file's path";
        if (info.Exists && !IsRegularFile(full)) return "is not a regular file (a device, pipe or socket): give a new path or a regular file";
        if (dir is not null && !CanCreateIn(dir)) return $"directory {dir} is not writable: give a path in one that is";
        return null;
    }

    /// <summary>Whether a file can be made in <paramref name="dir"/>, as the write's temporary file will be: tried, not guessed from permissions.</summary>
    private static bool CanCreateIn(string dir)
    {
        try
        {
            using var probe = new FileStream(Path.Combine(dir, $".longctx-probe-{Guid.NewGuid():N}"), FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose);
            return true;
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException) { return false; }
    }

    /// <summary>Throws a one-line error naming <paramref name="path"/> unless a file may be written there.</summary>
    public static void Require(string path)
    {
        if (Problem(path) is { } problem) throw new LongCtxException($"{path}: {problem}");
    }

    /// <summary>
    /// On Linux, the file type from statx (its layout is the same on every architecture); elsewhere, or on a kernel or C
    /// library without statx, whatever .NET does not call a directory or a link counts as a regular file.
    /// </summary>
    private static bool IsRegularFile(string path)
    {
        if (!OperatingSystem.IsLinux()) return true;
        var status = new byte[256];
        try
        {
            if (Statx(AtCurrentDirectory, path, AtSymlinkNoFollow, StatxType, status) != 0) return true;
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            return true;
        }
        int mode = BitConverter.ToUInt16(status, StatxModeOffset);
        return (mode & FileTypeMask) == RegularFile;
    }

    private const int AtCurrentDirectory = -100, AtSymlinkNoFollow = 0x100, StatxType = 0x1, StatxModeOffset = 28;
    private const int FileTypeMask = 0xF000, RegularFile = 0x8000;

    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int directory, string path, int flags, uint mask, [Out] byte[] status);
}
