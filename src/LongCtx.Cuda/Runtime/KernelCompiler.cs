using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using LongCtx.Cuda.Native;

namespace LongCtx.Cuda.Runtime;

/// <summary>
/// Compiles the embedded CUDA C++ kernels with NVRTC for the device's architecture at first use and keeps
/// the cubin on disk, keyed by a hash of source, options and NVRTC version, so later runs load it at once.
/// Cache folder: <see cref="RuntimeSettings.KernelCache"/>, else $XDG_CACHE_HOME/longctx/kernels, else ~/.cache/longctx/kernels.
/// </summary>
internal static unsafe class KernelCompiler
{
    public static byte[] Cubin(string resource, int computeMajor, int computeMinor, IReadOnlyList<string> defines, string? cacheFolder)
    {
        string source = WithHeaders(ReadResource(resource));
        string include = Path.Combine(NativeLibraries.CudaRoot, "include");
        if (!File.Exists(Path.Combine(include, "cuda_bf16.h")))
            throw new LongCtxException($"cuda_bf16.h not found in {include}: the CUDA kernels are compiled at run time and need the CUDA headers; set CUDA_HOME to the CUDA toolkit");
        // sm_90a enables Hopper-only instructions; other architectures get their plain target.
        string arch = computeMajor == 9 && computeMinor == 0 ? "sm_90a" : $"sm_{computeMajor}{computeMinor}";
        var options = new List<string> { $"--gpu-architecture={arch}", "--std=c++17", "-default-device", "--use_fast_math", $"-I{include}" };
        options.AddRange(defines.Select(d => $"-D{d}"));
        Nvrtc.Check(Nvrtc.nvrtcVersion(out int major, out int minor), "nvrtcVersion");

        string key = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes($"{source}\n{string.Join(' ', options)}\nnvrtc {major}.{minor}")))[..24];
        string folder = cacheFolder ?? DefaultCacheFolder();
        string path = Path.Combine(folder, $"{Path.GetFileNameWithoutExtension(resource)}-{key}.cubin");
        if (File.Exists(path)) return File.ReadAllBytes(path);

        var cubin = Compile(source, resource, options);
        try
        {
            Directory.CreateDirectory(folder);
            string temp = path + $".{Environment.ProcessId}.tmp";
            File.WriteAllBytes(temp, cubin);
            File.Move(temp, path, overwrite: true); // atomic: concurrent ranks never read half a file
        }
        catch (IOException) { } // an unwritable cache only costs a recompile next time
        catch (UnauthorizedAccessException) { }
        return cubin;
    }

    private static byte[] Compile(string source, string name, List<string> options)
    {
        Nvrtc.Check(Nvrtc.nvrtcCreateProgram(out var program, source, name, 0, 0, 0), "nvrtcCreateProgram");
        try
        {
            var utf8 = options.Select(o => Encoding.UTF8.GetBytes(o + "\0")).ToArray();
            var handles = utf8.Select(b => System.Runtime.InteropServices.GCHandle.Alloc(b, System.Runtime.InteropServices.GCHandleType.Pinned)).ToArray();
            int status;
            try
            {
                var pointers = stackalloc byte*[utf8.Length];
                for (int i = 0; i < utf8.Length; i++) pointers[i] = (byte*)handles[i].AddrOfPinnedObject();
                status = Nvrtc.nvrtcCompileProgram(program, utf8.Length, pointers);
            }
            finally
            {
                foreach (var h in handles) h.Free();
            }
            if (status != 0)
            {
                Nvrtc.nvrtcGetProgramLogSize(program, out var logSize);
                var log = new byte[(int)logSize + 1];
                fixed (byte* l = log) Nvrtc.nvrtcGetProgramLog(program, l);
                throw new LongCtxException($"compiling {name} with NVRTC failed: {Encoding.UTF8.GetString(log).TrimEnd('\0').Trim()}");
            }
            Nvrtc.Check(Nvrtc.nvrtcGetCUBINSize(program, out var size), "nvrtcGetCUBINSize");
            var cubin = new byte[(int)size];
            fixed (byte* c = cubin) Nvrtc.Check(Nvrtc.nvrtcGetCUBIN(program, c), "nvrtcGetCUBIN");
            return cubin;
        }
        finally
        {
            Nvrtc.nvrtcDestroyProgram(ref program);
        }
    }

    private static string DefaultCacheFolder()
    {
        string root = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } x ? x
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "longctx", "kernels");
    }

    /// <summary>
    /// Puts each embedded header a line <c>#include "NAME.cuh"</c> names in place of that line: NVRTC gets one source
    /// with no header list to pass, and the cache key (a hash of the source) changes when a header does.
    /// </summary>
    private static string WithHeaders(string source) =>
        Regex.Replace(source, @"^#include ""(\w+\.cuh)""[ \t]*$", m => ReadResource(m.Groups[1].Value), RegexOptions.Multiline);

    private static string ReadResource(string name)
    {
        using var s = Assembly.GetExecutingAssembly().GetManifestResourceStream($"LongCtx.Cuda.Kernels.{name}")
            ?? throw new InvalidOperationException($"kernel source {name} is not embedded");
        using var r = new StreamReader(s);
        return r.ReadToEnd();
    }
}
