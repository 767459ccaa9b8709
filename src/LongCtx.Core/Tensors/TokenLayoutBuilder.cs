namespace LongCtx.Tensors;

/// <summary>
/// Builds a <see cref="TokenLayout"/> run by run: a sequence's cached positions on a rank arrive as one span
/// and are copied in bulk. Decode rebuilds every rank's key layout each step, and at 128K context a batch's
/// layouts hold about a million rows: row by row through lists, that is host time a GPU step waits for. Give the
/// exact row count as capacity and the arrays become the layout's without a copy.
/// </summary>
public sealed class TokenLayoutBuilder(int capacity = 0)
{
    // Every row is written before it is read: no need to zero hundreds of thousands of them first.
    private int[] _seqIds = GC.AllocateUninitializedArray<int>(capacity), _positions = GC.AllocateUninitializedArray<int>(capacity);
    private int _count;

    /// <summary>Rows of sequence <paramref name="seqId"/> at <paramref name="positions"/>.</summary>
    public void Append(int seqId, ReadOnlySpan<int> positions)
    {
        Reserve(_count + positions.Length);
        _seqIds.AsSpan(_count, positions.Length).Fill(seqId);
        positions.CopyTo(_positions.AsSpan(_count));
        _count += positions.Length;
    }

    public void Append(int seqId, int position) => Append(seqId, [position]);

    /// <summary>The layout of the rows appended; the builder must not be used after.</summary>
    public TokenLayout Build() => _count == _seqIds.Length ? new(_seqIds, _positions) : new(_seqIds[.._count], _positions[.._count]);

    private void Reserve(int rows)
    {
        if (rows <= _seqIds.Length) return;
        int capacity = Math.Max(rows, _seqIds.Length * 2);
        Array.Resize(ref _seqIds, capacity);
        Array.Resize(ref _positions, capacity);
    }
}
