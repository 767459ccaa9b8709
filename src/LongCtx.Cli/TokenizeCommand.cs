using System.CommandLine;
using System.Text.Json.Nodes;
using LongCtx.Text;

namespace LongCtx.Cli;

/// <summary>`longctx tokenize`: text to token ids, without special tokens.</summary>
internal static class TokenizeCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model") { Description = "model directory holding tokenizer.json (or tokenizer.json itself), or a repo id in the Hugging Face cache" };
        var tokenizerPath = new Option<string?>("--tokenizer") { Description = "tokenizer.json or its directory" };
        var text = new Option<string?>("--text") { Description = "text to tokenize" };
        var file = new Option<string?>("--text-file") { Description = "file holding the text" };
        var json = new Option<bool>("--json") { Description = "print {\"ids\": [...]}" };
        var stats = new Option<bool>("--stats") { Description = "print the token count and encoding speed (one thread) on stderr: the tokenizer benchmark" };
        var command = new Command("tokenize", "Tokenize text with a model's tokenizer") { model, tokenizerPath, text, file, json, stats };
        command.SetAction(r =>
        {
            string path = r.GetValue(tokenizerPath)
                ?? (r.GetValue(model) is { } m ? File.Exists(m) ? m : ModelDirectory.Resolve(m) : throw new LongCtxException("give --model DIR or --tokenizer PATH"));
            string? t = r.GetValue(text), f = r.GetValue(file);
            if ((t is null) == (f is null)) throw new LongCtxException("give exactly one of --text, --text-file");
            var tokenizer = Tokenizer.Load(path);
            string input = t ?? PromptInput.ReadText(f!);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var ids = tokenizer.Encode(input, addSpecialTokens: false);
            if (r.GetValue(stats))
                Console.Error.WriteLine($"{ids.Length} tokens from {input.Length} characters in {clock.Elapsed.TotalSeconds:0.000} s " +
                                        $"({ids.Length / Math.Max(clock.Elapsed.TotalSeconds, 1e-9) / 1e6:0.00} M tokens/s, one thread)");
            if (r.GetValue(json)) Console.WriteLine(new JsonObject { ["ids"] = new JsonArray(ids.Select(i => (JsonNode)i).ToArray()) }.ToJsonString());
            else Console.WriteLine(string.Join(' ', ids));
            return 0;
        });
        return command;
    }
}
