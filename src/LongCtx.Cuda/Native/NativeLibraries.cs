using System.Reflection;
using System.Runtime.InteropServices;

namespace LongCtx.Cuda.Native;

/// <summary>
/// Finds NVIDIA's shared libraries for the LibraryImport declarations of this assembly: CUDA_HOME,
/// CUDA_PATH, LD_LIBRARY_PATH and the standard folders, trying the unversioned name then the versions
/// CUDA 12/13, NCCL 2 and cuDNN 9 ship. A library that is nowhere gets one error listing every place looked in.
/// </summary>
internal static class NativeLibraries
{
    public const string Cuda = "longctx-cuda", Nvrtc = "longctx-nvrtc", CublasLt = "longctx-cublaslt", Nccl = "longctx-nccl", Cudnn = "longctx-cudnn";

    private static readonly Dictionary<string, string[]> FileNames = new()
    {
        [Cuda] = ["libcuda.so.1", "libcuda.so"],
        [Nvrtc] = ["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"],
        [CublasLt] = ["libcublasLt.so", "libcublasLt.so.13", "libcublasLt.so.12"],
        [Nccl] = ["libnccl.so", "libnccl.so.2"],
        // The backend API's enum values are cuDNN 9's: never bind another major version.
        [Cudnn] = ["libcudnn.so.9"],
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
        if (!FileNames.ContainsKey(name)) return 0;
        if (TryLoad(name, out var handle, out var error)) return handle;
        throw new LongCtxException(error);
    }

    /// <summary>
    /// Loads one of the libraries without throwing, so an optional one (cuDNN) can be probed: false with
    /// the one-line error listing where it looked.
    /// </summary>
    public static bool TryLoad(string name, out nint handle, out string error)
    {
        var files = FileNames[name];
        var looked = new List<string>();
        foreach (var folder in SearchFolders().Distinct())
            foreach (var f in files)
            {
                string candidate = Path.Combine(folder, f);
                looked.Add(candidate);
                if (File.Exists(candidate) && NativeLibrary.TryLoad(candidate, out handle))
                {
                    error = "";
                    return true;
                }
            }
        // Last, the loader's own search (ldconfig cache), which finds the driver's libcuda.so.1 anywhere.
        foreach (var f in files)
            if (NativeLibrary.TryLoad(f, out handle))
            {
                error = "";
                return true;
            }
        handle = 0;
        string needed = name == Cudnn ? "needed for cuDNN attention" : "needed for the CUDA backend";
        error = $"{files[0]} not found ({needed}); looked in: {string.Join(", ", looked.Select(Path.GetDirectoryName).Distinct())} " +
                $"and the loader path. Install {(name == Cudnn ? "cuDNN 9" : "CUDA / NCCL")} or set CUDA_HOME or LD_LIBRARY_PATH";
        return false;
    }
}
