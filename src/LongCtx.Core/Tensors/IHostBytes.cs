namespace LongCtx.Tensors;

/// <summary>
/// A tensor whose elements lie in host memory, as bytes the communicators that move host memory (threads of one
/// process, TCP) read and write directly.
/// </summary>
public interface IHostBytes
{
    Span<byte> RawBytes { get; }
}
