using static LongCtx.Cuda.Native.Cudnn;

namespace LongCtx.Cuda.Attention;

/// <summary>
/// One cuDNN backend descriptor, destroyed with its owner. The typed setters return the descriptor so a
/// graph reads as a chain of attributes, and every failing status names the descriptor and attribute.
/// </summary>
internal sealed unsafe class CudnnDescriptor : IDisposable
{
    private readonly DescriptorType _type;
    private nint _handle;

    public CudnnDescriptor(DescriptorType type)
    {
        _type = type;
        Check(cudnnBackendCreateDescriptor(type, out _handle), $"cudnnBackendCreateDescriptor({type})");
    }

    public nint Handle => _handle;

    public CudnnDescriptor Set(AttributeName name, AttributeType type, long count, void* values)
    {
        Check(cudnnBackendSetAttribute(_handle, name, type, count, values), $"setting {name} of a {_type} descriptor");
        return this;
    }

    public CudnnDescriptor Set(AttributeName name, long value) => Set(name, AttributeType.Int64, 1, &value);

    public CudnnDescriptor Set(AttributeName name, long[] values)
    {
        fixed (long* v = values) return Set(name, AttributeType.Int64, values.Length, v);
    }

    public CudnnDescriptor Set(AttributeName name, bool value)
    {
        byte b = value ? (byte)1 : (byte)0; // C bool
        return Set(name, AttributeType.Boolean, 1, &b);
    }

    public CudnnDescriptor Set(AttributeName name, DataType value) => Set(name, AttributeType.DataType, 1, &value);

    public CudnnDescriptor Set(AttributeName name, PointwiseMode value) => Set(name, AttributeType.PointwiseMode, 1, &value);

    public CudnnDescriptor Set(AttributeName name, ReductionOperator value) => Set(name, AttributeType.ReductionOperator, 1, &value);

    public CudnnDescriptor Set(AttributeName name, HeuristicsMode value) => Set(name, AttributeType.HeuristicsMode, 1, &value);

    public CudnnDescriptor SetHandle(AttributeName name, nint cudnnHandle) => Set(name, AttributeType.Handle, 1, &cudnnHandle);

    public CudnnDescriptor Set(AttributeName name, params CudnnDescriptor[] descriptors)
    {
        var handles = stackalloc nint[descriptors.Length];
        for (int i = 0; i < descriptors.Length; i++) handles[i] = descriptors[i].Handle;
        return Set(name, AttributeType.BackendDescriptor, descriptors.Length, handles);
    }

    public long GetInt64(AttributeName name)
    {
        long value = 0;
        Check(cudnnBackendGetAttribute(_handle, name, AttributeType.Int64, 1, out _, &value), $"reading {name} of a {_type} descriptor");
        return value;
    }

    public CudnnDescriptor Complete()
    {
        Check(TryComplete(), $"cudnnBackendFinalize({_type})");
        return this;
    }

    /// <summary>Finalizes and returns cuDNN's status: where "not supported" is an answer, not an error.</summary>
    public int TryComplete() => cudnnBackendFinalize(_handle);

    public void Dispose()
    {
        if (_handle == 0) return;
        cudnnBackendDestroyDescriptor(_handle);
        _handle = 0;
    }
}
