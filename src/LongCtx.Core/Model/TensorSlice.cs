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
        if (config.NumKvHeads % size != 0 || config.NumHeads % size != 0 || config.IntermediateSize % size != 0)
        {
            var fits = Enumerable.Range(1, config.NumKvHeads)
                .Where(n => config.NumKvHeads % n == 0 && config.NumHeads % n == 0 && config.IntermediateSize % n == 0);
            throw new SettingException(Setting.TensorParallel, $"must divide num_key_value_heads ({config.NumKvHeads}), num_attention_heads ({config.NumHeads}) " +
                                                               $"and intermediate_size ({config.IntermediateSize}): use {string.Join(", ", fits)}", size);
        }
        if (config.Quantization?.Weights == Fp8WeightScaling.Block || config.Quantization?.Activations == Fp8ActivationScaling.PerTokenGroup)
        {
            // A rank's rows of q/k/v/gate/up and its input columns of o/down must be whole 128-wide scale blocks (and
            // input groups): a block split over two ranks would need its one scale on both sides of a sum no rank sees.
            int block = Fp8Linear.BlockSize;
            bool Whole(int n) => config.NumHeads * config.HeadDim / n % block == 0 && config.NumKvHeads * config.HeadDim / n % block == 0
                                 && config.IntermediateSize / n % block == 0;
            if (!Whole(size))
            {
                var fits = Enumerable.Range(1, config.NumKvHeads)
                    .Where(n => config.NumKvHeads % n == 0 && config.NumHeads % n == 0 && config.IntermediateSize % n == 0 && Whole(n));
                throw new SettingException(Setting.TensorParallel, $"would split the {config.Quantization!.Method} checkpoint's {block}-wide FP8 scale blocks: " +
                                                                   $"each rank needs whole blocks of the q/k/v/o and MLP widths ({config.NumHeads * config.HeadDim}, " +
                                                                   $"{config.NumKvHeads * config.HeadDim}, {config.IntermediateSize}): use {string.Join(", ", fits)}", size);
            }
        }
        return new TensorSlice(rank, size);
    }

    public int Heads(ModelConfig c) => c.NumHeads / Size;
    public int KvHeads(ModelConfig c) => c.NumKvHeads / Size;
    public int Intermediate(ModelConfig c) => c.IntermediateSize / Size;
}
