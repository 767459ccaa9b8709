using System.CommandLine;
using System.Text.Json;
using LongCtx.Text;

namespace LongCtx.Cli;

/// <summary>The prompt of a command: text, a text file, or a JSON file of token ids used as they are.</summary>
internal sealed class PromptInput
{
    public readonly Option<string?> Text = new("--prompt") { Description = "prompt text" };
    public readonly Option<string?> File = new("--prompt-file") { Description = "file holding the prompt text" };
    public readonly Option<string?> Ids = new("--prompt-ids") { Description = "JSON file with an array of token ids, used as is" };

    public void AddTo(Command command)
    {
        command.Options.Add(Text);
        command.Options.Add(File);
        command.Options.Add(Ids);
    }

    public int[] Tokens(ParseResult r, Func<Tokenizer> tokenizer)
    {
        string? text = r.GetValue(Text), file = r.GetValue(File), ids = r.GetValue(Ids);
        int given = (text is null ? 0 : 1) + (file is null ? 0 : 1) + (ids is null ? 0 : 1);
        if (given != 1) throw new LongCtxException("give exactly one of --prompt, --prompt-file, --prompt-ids");
        if (ids is not null) return ReadIds(ids);
        if (file is not null) text = ReadText(file);
        if (text!.Length == 0) throw new LongCtxException(file is null ? "--prompt is empty: give some text" : $"{file}: the prompt file is empty");
        // A text prompt is tokenized as Hugging Face does by default: with the model's BOS token.
        return tokenizer().Encode(text, addSpecialTokens: true);
    }

    public static string ReadText(string path)
    {
        if (!System.IO.File.Exists(path)) throw new LongCtxException($"{path}: prompt file not found");
        return System.IO.File.ReadAllText(path);
    }

    public static int[] ReadIds(string path)
    {
        if (!System.IO.File.Exists(path)) throw new LongCtxException($"{path}: token id file not found");
        try
        {
            using var doc = JsonDocument.Parse(System.IO.File.ReadAllBytes(path));
            if (doc.RootElement.ValueKind != JsonValueKind.Array) throw new FormatException("not a JSON array");
            var ids = doc.RootElement.EnumerateArray().Select(e => e.GetInt32()).ToArray();
            if (ids.Length == 0) throw new FormatException("the array is empty");
            return ids;
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            throw new LongCtxException($"{path}: expected a JSON array of token ids ({e.Message})");
        }
    }
}
