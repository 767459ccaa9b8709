using LongCtx.Model;
using LongCtx.Tensors;

namespace LongCtx.Approximate;

/// <summary>
/// Trained retaining heads (Locret, used by APB as its compressor), read from
/// <c>apb_retaining_heads.safetensors</c> in the model directory. One small gated MLP per layer maps an
/// entry's [q | k | v] (after RoPE, as the strategy sees them) to one importance score per KV head:
///
///   score = down · (silu(gate_q·q + gate_k·k + gate_v·v) ⊙ (up_q·q + up_k·k + up_v·v))
///
/// Tensors per layer l (F32, BF16 or F16; I = the heads' hidden size, any):
///   layers.{l}.gate_q, layers.{l}.up_q   [I, NH·D]
///   layers.{l}.gate_k, layers.{l}.up_k   [I, NKV·D]
///   layers.{l}.gate_v, layers.{l}.up_v   [I, NKV·D]
///   layers.{l}.down                      [NKV, I]
/// The first matrix is stored in three column blocks so no backend needs a concatenation: the three
/// products add up to the product with [q | k | v].
/// </summary>
public sealed class RetainingHeadWeights : IDisposable
{
    public const string FileName = "apb_retaining_heads.safetensors";
    public static readonly string[] Parts = ["gate_q", "gate_k", "gate_v", "up_q", "up_k", "up_v", "down"];

    private readonly SafetensorsFile _file;

    private RetainingHeadWeights(SafetensorsFile file, HostTensor[][] layers)
    {
        _file = file;
        Layers = layers;
    }

    /// <summary>Per layer, the tensors in the order of <see cref="Parts"/>.</summary>
    public IReadOnlyList<HostTensor[]> Layers { get; }

    /// <summary>The retaining heads in a model directory, or null when it has none.</summary>
    public static RetainingHeadWeights? TryLoad(string modelDirectory, ModelConfig config)
    {
        string path = Path.Combine(modelDirectory, FileName);
        return File.Exists(path) ? Load(path, config) : null;
    }

    public static RetainingHeadWeights Load(string path, ModelConfig config)
    {
        var file = SafetensorsFile.Open(path);
        try
        {
            int qWidth = config.NumHeads * config.HeadDim, kvWidth = config.NumKvHeads * config.HeadDim;
            var layers = new HostTensor[config.NumLayers][];
            int hidden = -1;
            for (int l = 0; l < config.NumLayers; l++)
            {
                layers[l] = Parts.Select(p => file.TryGet($"layers.{l}.{p}", out var t) ? t
                    : throw new LongCtxException($"{path}: tensor layers.{l}.{p} is missing ({FileName} needs {string.Join(", ", Parts)} for each of the {config.NumLayers} layers)")).ToArray();
                if (hidden < 0) hidden = layers[l][0].Shape[0];
                int[][] expected = [[hidden, qWidth], [hidden, kvWidth], [hidden, kvWidth], [hidden, qWidth], [hidden, kvWidth], [hidden, kvWidth], [config.NumKvHeads, hidden]];
                for (int i = 0; i < Parts.Length; i++)
                    if (!layers[l][i].Shape.SequenceEqual(expected[i]))
                        throw new LongCtxException($"{path}: layers.{l}.{Parts[i]} has shape [{string.Join(", ", layers[l][i].Shape)}], expected [{string.Join(", ", expected[i])}]");
            }
            return new RetainingHeadWeights(file, layers);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public void Dispose() => _file.Dispose();
}
