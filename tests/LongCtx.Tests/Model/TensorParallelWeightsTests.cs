using LongCtx.Model;
using LongCtx.Tensors;

namespace LongCtx.Tests.Model;

/// <summary>
/// Each tensor-parallel rank's share of a layer, element by element against the whole weights: its heads'
/// rows of q, k, v (and their biases), its MLP columns' rows of gate and up, the matching input columns of o
/// and down, o's bias on rank 0 only, and norms whole. Put back together, the shares are the layer.
/// </summary>
public class TensorParallelWeightsTests
{
    [Theory]
    [InlineData(DType.BF16, 2)]
    [InlineData(DType.F32, 4)]
    public void SharesAreTheRightRowsAndColumns(DType dtype, int size)
    {
        var config = ModelConfig.FromJson("""
            {
              "architectures": ["LlamaForCausalLM"], "model_type": "llama", "attention_bias": true,
              "hidden_size": 24, "intermediate_size": 40, "num_hidden_layers": 1,
              "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 4, "vocab_size": 50,
              "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0
            }
            """, "test config.json");
        using var weights = ModelWeights.Dummy(config, Random.Shared.Next(), dtype);
        var w = weights.Layers[0];
        int q = 8 / size * 4, kv = 4 / size * 4, mlp = 40 / size;
        var owners = new List<IDisposable>();
        try
        {
            for (int rank = 0; rank < size; rank++)
            {
                var s = TensorParallelWeights.Slice(w, config, TensorSlice.Of(config, rank, size), owners);
                AssertRows(s.QProj, w.QProj, rank * q, q);
                AssertRows(s.KProj, w.KProj, rank * kv, kv);
                AssertRows(s.VProj, w.VProj, rank * kv, kv);
                AssertRows(s.QBias!, w.QBias!, rank * q, q);
                AssertRows(s.KBias!, w.KBias!, rank * kv, kv);
                AssertRows(s.VBias!, w.VBias!, rank * kv, kv);
                AssertRows(s.GateProj, w.GateProj, rank * mlp, mlp);
                AssertRows(s.UpProj, w.UpProj, rank * mlp, mlp);
                AssertColumns(s.OProj, w.OProj, rank * q, q);
                AssertColumns(s.DownProj, w.DownProj, rank * mlp, mlp);
                Assert.Same(rank == 0 ? w.OBias : null, s.OBias);
                Assert.Same(w.InputNorm, s.InputNorm);
                Assert.Same(w.PostAttentionNorm, s.PostAttentionNorm);
            }
        }
        finally
        {
            foreach (var o in owners) o.Dispose();
        }
    }

    private static void AssertRows(HostTensor share, HostTensor whole, int start, int count)
    {
        long row = whole.Length / whole.Shape[0];
        Assert.Equal([count, .. whole.Shape[1..]], share.Shape);
        for (long i = 0; i < share.Length; i++)
            Assert.Equal(ModelFixtures.ReadFloat(whole, start * row + i), ModelFixtures.ReadFloat(share, i));
    }

    private static void AssertColumns(HostTensor share, HostTensor whole, int start, int count)
    {
        int rows = whole.Shape[0], cols = whole.Shape[1];
        Assert.Equal([rows, count], share.Shape);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < count; c++)
                Assert.Equal(ModelFixtures.ReadFloat(whole, (long)r * cols + start + c), ModelFixtures.ReadFloat(share, (long)r * count + c));
    }
}
