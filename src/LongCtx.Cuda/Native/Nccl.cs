using System.Runtime.InteropServices;

namespace LongCtx.Cuda.Native;

/// <summary>NCCL: the communicator of ranks that are GPUs.</summary>
internal static unsafe partial class Nccl
{
    private const string Lib = NativeLibraries.Nccl;

    /// <summary>ncclUniqueId: 128 opaque bytes, passed by value.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 128)]
    public struct UniqueId { public fixed byte Bytes[128]; }

    [LibraryImport(Lib)] public static partial int ncclGetUniqueId(out UniqueId id);
    [LibraryImport(Lib)] public static partial int ncclCommInitRank(out nint comm, int ranks, UniqueId id, int rank);
    [LibraryImport(Lib)] public static partial int ncclCommInitAll(nint* comms, int count, int* devices);
    [LibraryImport(Lib)] public static partial int ncclCommDestroy(nint comm);
    /// <summary>NCCL 2.18+: the ranks calling with the same color form a new communicator, ranked by key. config may be 0 (defaults).</summary>
    [LibraryImport(Lib)] public static partial int ncclCommSplit(nint comm, int color, int key, out nint newcomm, nint config);
    [LibraryImport(Lib)] public static partial int ncclGroupStart();
    [LibraryImport(Lib)] public static partial int ncclGroupEnd();
    [LibraryImport(Lib)] public static partial int ncclSend(nint buffer, nuint count, int type, int peer, nint comm, nint stream);
    [LibraryImport(Lib)] public static partial int ncclRecv(nint buffer, nuint count, int type, int peer, nint comm, nint stream);
    [LibraryImport(Lib)] public static partial int ncclAllGather(nint send, nint receive, nuint count, int type, nint comm, nint stream);
    [LibraryImport(Lib)] public static partial int ncclAllReduce(nint send, nint receive, nuint count, int type, int op, nint comm, nint stream);
    [LibraryImport(Lib)] public static partial int ncclBroadcast(nint send, nint receive, nuint count, int type, int root, nint comm, nint stream);
    [LibraryImport(Lib)] public static partial nint ncclGetErrorString(int result);
    [LibraryImport(Lib)] public static partial nint ncclGetLastError(nint comm);

    public const int Uint8 = 1, Float32 = 7, Bfloat16 = 9, Sum = 0;

    public static void Check(int status, string what)
    {
        if (status == 0) return;
        // The last error names the cause (which peer, which socket, which library); NCCL_DEBUG=WARN shows more.
        string? detail = Marshal.PtrToStringUTF8(ncclGetLastError(0));
        throw new LongCtxException($"{what} failed: NCCL error {status} {Marshal.PtrToStringUTF8(ncclGetErrorString(status))}" +
                                   (string.IsNullOrWhiteSpace(detail) ? "" : $" ({detail.Trim().ReplaceLineEndings(" ")})") + "; rerun with NCCL_DEBUG=WARN for NCCL's log");
    }
}
