using System.Text;

namespace LongCtx.Text;

/// <summary>A tokenizer.json model: turns one pre-tokenized piece into ids.</summary>
internal abstract class TokenModel
{
    protected TokenModel(Dictionary<string, int> vocab, bool byteLevel)
    {
        Vocab = vocab;
        ByteLevel = byteLevel;
    }

    public Dictionary<string, int> Vocab { get; }

    /// <summary>Pieces are seen as their UTF-8 bytes written in GPT-2's printable byte alphabet (a ByteLevel pre-tokenizer).</summary>
    public bool ByteLevel { get; }

    public abstract void Encode(ReadOnlySpan<char> piece, List<int> ids);

    /// <summary>The piece as the vocabulary writes it: itself, or its bytes in the byte alphabet.</summary>
    protected string VocabForm(ReadOnlySpan<char> piece)
    {
        if (!ByteLevel) return piece.ToString();
        var bytes = Encoding.UTF8.GetBytes(piece.ToArray());
        return string.Create(bytes.Length, bytes, (dst, b) => { for (int i = 0; i < b.Length; i++) dst[i] = Text.ByteLevel.ByteToChar[b[i]]; });
    }
}

/// <summary>WordLevel: each piece is one vocabulary entry, else the unknown token.</summary>
internal sealed class WordLevelModel(Dictionary<string, int> vocab, bool byteLevel, string? unkToken) : TokenModel(vocab, byteLevel)
{
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _bySpan = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
    private readonly int? _unk = unkToken is not null && vocab.TryGetValue(unkToken, out int u) ? u : null;

    public override void Encode(ReadOnlySpan<char> piece, List<int> ids)
    {
        if (ByteLevel ? Vocab.TryGetValue(VocabForm(piece), out int id) : _bySpan.TryGetValue(piece, out id)) ids.Add(id);
        else if (_unk is int unk) ids.Add(unk);
        else throw new LongCtxException($"tokenizer WordLevel: '{piece.ToString()}' is not in the vocabulary and the model has no unk_token");
    }
}
