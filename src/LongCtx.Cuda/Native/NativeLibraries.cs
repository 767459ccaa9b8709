using System.Reflection;
using System.Runtime.InteropServices;

namespace LongCtx.Cuda.Native;

/// <summary>
/// Finds NVIDIA's shared libraries for the LibraryImport declarations of this assembly: CUDA_HOME,
/// CUDA_PATH, LD_LIBRARY_PATH and the standard folders, trying the unversioned name then the versions
/// CUDA 12/13 and NCCL 2 ship. A library that is nowhere gets one error listing every place looked in.
/// </summary>
internal static class NativeLibraries
{
    public const string Cuda = "longctx-cuda", Nvrtc = "longctx-nvrtc", Cublas = "longctx-cublas", Nccl = "longctx-nccl";

    private static readonly Dictionary<string, string[]> FileNames = new()
    {
        [Cuda] = ["libcuda.so.1", "libcuda.so"],
        [Nvrtc] = ["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"],
        [Cublas] = ["libcublas.so", "libcublas.so.13", "libcublas.so.12"],
        [Nccl] = ["libnccl.so", "libnccl.so.2"],
    };

    private static int _registered;

    public static void Register()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 0)
            NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);
    }

    /// <summary>The CUDA toolkit root: CUDA_HOME, CUDA_PATH, else /usr/local/cuda.</summary>
    public static string CudaRoot =>
        Environment.GetEnvironmentVariable("CUDA_HOME") is { Length: > 0 } h ? h
        : Environment.GetEnvironmentVariable("CUDA_PATH") is { Length: > 0 } p ? p
        : "/usr/local/cuda";

    public static IEnumerable<string> SearchFolders()
    {
        foreach (var v in new[] { "CUDA_HOME", "CUDA_PATH" })
            if (Environment.GetEnvironmentVariable(v) is { Length: > 0 } root)
            {
                yield return Path.Combine(root, "lib64");
                yield return Path.Combine(root, "lib");
            }
        foreach (var d in (Environment.GetEnvironmentVariable("LD_LIBRARY_PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
            yield return d;
        yield return "/usr/local/cuda/lib64";
        yield return "/usr/lib/x86_64-linux-gnu";
        yield return "/usr/lib64";
        yield return "/usr/lib";
    }

    private static nint Resolve(string name, Assembly assembly, DllImportSearchPath? path)
    {
        if (!FileNames.TryGetValue(name, out var files)) return 0;
        var looked = new List<string>();
        foreach (var folder in SearchFolders().Distinct())
            foreach (var f in files)
            {
                string candidate = Path.Combine(folder, f);
                looked.Add(candidate);
                if (File.Exists(candidate) && NativeLibrary.TryLoad(candidate, out var handle)) return handle;
            }
        // Last, the loader's own search (ldconfig cache), which finds the driver's libcuda.so.1 anywhere.
        foreach (var f in files)
            if (NativeLibrary.TryLoad(f, out var handle)) return handle;
        throw new LongCtxException($"{files[0]} not found (needed for --device cuda); looked in: {string.Join(", ", looked.Select(Path.GetDirectoryName).Distinct())} " +
                                   "and the loader path. Install CUDA / NCCL or set CUDA_HOME or LD_LIBRARY_PATH");
    }
}
