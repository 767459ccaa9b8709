using LongCtx.Quantization;

namespace LongCtx.Model;

/// <summary>
/// The part of every layer one tensor-parallel rank holds, Megatron-style (the CP paper's TP inside a node):
/// a contiguous run of KV heads with the query heads that share them, and a contiguous run of MLP columns.
/// Rank t of T holds KV heads [t·NKV/T, (t+1)·NKV/T) and query heads [t·NH/T, (t+1)·NH/T) — the same groups,
/// since query head h uses KV head h / (NH/NKV). Embedding, norms and LM head are whole on every rank.
/// </summary>
public readonly record struct TensorSlice(int Rank, int Size)
{
    public static readonly TensorSlice Whole = new(0, 1);

    /// <summary>Rank <paramref name="rank"/> of <paramref name="size"/>, once the model's heads and MLP divide evenly.</summary>
    public static TensorSlice Of(ModelConfig config, int rank, int size)
    {
        if (size < 1 || rank < 0 || rank >= size) throw new ArgumentOutOfRangeException(nameof(rank), $"tensor-parallel rank {rank} of {size}");
        bool Divides(int n) => config.NumKvHeads % n == 0 && config.NumHeads % n == 0 && config.IntermediateSize % n == 0;
        // With 128-wide FP8 scale blocks (or input groups), a rank's rows of q/k/v/gate/up and its input columns of o/down
        // must be whole blocks: a block split over two ranks would need its one scale on both sides of a sum no rank sees.
        bool blocked = config.Quantization?.Weights == Fp8WeightScaling.Block || config.Quantization?.Activations == Fp8ActivationScaling.PerTokenGroup;
        int block = Fp8Linear.BlockSize, qWidth = config.NumHeads * config.HeadDim, kvWidth = config.NumKvHeads * config.HeadDim;
        bool WholeBlocks(int n) => !blocked || (qWidth / n % block == 0 && kvWidth / n % block == 0 && config.IntermediateSize / n % block == 0);
        string Fits() => string.Join(", ", Enumerable.Range(1, config.NumKvHeads).Where(n => Divides(n) && WholeBlocks(n)));
        if (!Divides(size))
            throw new SettingException(Setting.TensorParallel, $"must divide num_key_value_heads ({config.NumKvHeads}), num_attention_heads ({config.NumHeads}) " +
                                                               $"and intermediate_size ({config.IntermediateSize}): use {Fits()}", size);
        if (!WholeBlocks(size))
            throw new SettingException(Setting.TensorParallel, $"would split the {config.Quantization!.Method} checkpoint's {block}-wide FP8 scale blocks: " +
                                                               $"each rank needs whole blocks of the q/k/v/o and MLP widths ({qWidth}, {kvWidth}, " +
                                                               $"{config.IntermediateSize}): use {Fits()}", size);
        return new TensorSlice(rank, size);
    }

    public int Heads(ModelConfig c) => c.NumHeads / Size;
    public int KvHeads(ModelConfig c) => c.NumKvHeads / Size;
    public int Intermediate(ModelConfig c) => c.IntermediateSize / Size;
}
