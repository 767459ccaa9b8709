using System.CommandLine;
using System.Text;
using LongCtx.Model;

namespace LongCtx.Cli;

/// <summary>
/// `longctx make-retrieval-prompts`: the prompt file `eval-retrieval --prompts` reads, byte for byte what
/// bench/retrieval/prompts.py writes for the same arguments, so the retrieval job needs only .NET.
/// </summary>
internal static class MakeRetrievalPromptsCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--out") { Description = "JSONL file to write", Required = true };
        var contexts = new Option<string>("--contexts") { Description = "prompt lengths in tokens, comma separated", DefaultValueFactory = _ => "16384,32768,65536" };
        var perContext = new Option<int>("--per-context") { Description = "prompts per context length", DefaultValueFactory = _ => 24 };
        var seed = new Option<long>("--seed") { Description = "seed of Python's random.Random, as prompts.py takes it (training draws its own)", DefaultValueFactory = _ => RetrievalTask.DefaultSeed };
        var command = new Command("make-retrieval-prompts", "Write retrieval test prompts (documents with key-value records, each ending in a question), as bench/retrieval/prompts.py does")
            { output, contexts, perContext, seed };
        command.SetAction(r =>
        {
            var lengths = BenchCommand.Ints(r.GetValue(contexts)!, "--contexts");
            if (lengths.Length == 0 || lengths.Any(c => c < 1)) throw new LongCtxException($"--contexts {r.GetValue(contexts)}: give positive token counts, e.g. 4096,8192");
            int n = r.GetValue(perContext);
            if (n < 1) throw new LongCtxException("--per-context must be 1 or more");
            string path = r.GetValue(output)!;
            OutputFile.Require(path);
            var prompts = RetrievalTask.Prompts(lengths, n, r.GetValue(seed));
            using (var w = new StreamWriter(path, append: false, new UTF8Encoding(false)) { NewLine = "\n" })
                foreach (var p in prompts) w.WriteLine(p.ToJsonLine());
            Console.WriteLine($"wrote {prompts.Count} prompts to {path}");
            return 0;
        });
        return command;
    }
}
