using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Spectre.Console;
using LongCtx.Approximate;
using LongCtx.ContextParallel;
using LongCtx.Engine;
using LongCtx.Model;
using LongCtx.Sampling;
namespace LongCtx.Cli;

/// <summary>
/// `longctx eval-retrieval`: retrieval accuracy of the attention strategies. Loads the model once, then for
/// every strategy and rank count prefills each prompt, greedily decodes as many tokens as its answer has,
/// and counts exact matches per task and context length. Dense runs once, on one rank; the others run at
/// every rank count. Star and APB take the prompt's question as their query. Also reports how often a
/// strategy's answer equals dense's, which separates "the approximation changed the output" from "the
/// model does not know".
/// </summary>
internal static class EvalRetrievalCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Hugging Face model directory (config.json, safetensors)", Required = true };
        var prompts = new Option<string>("--prompts") { Description = "JSONL of prompts (bench/retrieval/prompts.py): ids, answer, query_tokens, context, task", Required = true };
        var strategies = new Option<string>("--strategies") { Description = "comma separated: dense (1 rank), pass-kv, pass-q, star, apb", DefaultValueFactory = _ => "dense,pass-kv,star,apb" };
        var ranks = new Option<string>("--ranks") { Description = "rank counts for every strategy but dense, comma separated; on GPUs, ranks beyond --gpus share them", DefaultValueFactory = _ => "2,4,8" };
        var device = new Option<string>("--device") { Description = "cpu or cuda", DefaultValueFactory = _ => "cpu" };
        var gpus = new Option<int>("--gpus") { Description = "GPUs for --device cuda (a smaller rank count uses as many as it has ranks)", DefaultValueFactory = _ => 1 };
        var threads = new Option<int?>("--threads") { Description = "CPU threads in all (default: all cores)" };
        var anchor = new Option<int?>("--anchor-tokens") { Description = "star/apb anchor length l_a (default: the engine's, docs/APB.md)" };
        var passing = new Option<int?>("--passing-tokens") { Description = "apb passing length l_p (default: the engine's)" };
        var evenBlocks = new Option<bool>("--even-blocks") { Description = "star and apb: split the document into equal blocks, as the papers do (default: blocks that give every rank the same work)" };
        var json = new Option<bool>("--json") { Description = "print one JSON object instead of the table" };
        var precision = new PrecisionOptions();
        var command = new Command("eval-retrieval", "Retrieval accuracy of dense, pass-kv, star and apb over a prompt set");
        foreach (var o in new Option[] { model, prompts, strategies, ranks, device, gpus, threads, anchor, passing, evenBlocks, json }) command.Options.Add(o);
        foreach (var o in precision.All) command.Options.Add(o);
        command.SetAction(r =>
        {
            var d = r.GetValue(device)!;
            if (d is not ("cpu" or "cuda")) throw new LongCtxException($"--device {d} is unknown: use cpu or cuda");
            if (r.GetValue(anchor) < 0 || r.GetValue(passing) < 0) throw new LongCtxException("--anchor-tokens and --passing-tokens must be 0 or more");
            var rankCounts = BenchCommand.Ints(r.GetValue(ranks)!, "--ranks");
            if (rankCounts.Any(n => n < 1)) throw new LongCtxException($"--ranks {r.GetValue(ranks)}: rank counts must be 1 or more");
            return Run(r.GetValue(model)!, r.GetValue(prompts)!, Strategies(r.GetValue(strategies)!), rankCounts, d, r.GetValue(gpus),
                r.GetValue(threads), r.GetValue(anchor), r.GetValue(passing), r.GetValue(evenBlocks), precision.Read(r, d), r.GetValue(json));
        });
        return command;
    }

    /// <summary>One cell of the table: a strategy on a rank count, over the prompts of one task and context.</summary>
    private sealed record Score(string Task, int Context, string Strategy, int Ranks, int Correct, int SameAsDense, int Total);

    private static int Run(string dir, string promptPath, string[] strategies, int[] rankCounts, string device, int gpus, int? threads,
        int? anchor, int? passing, bool evenBlocks, PrecisionChoice precision, bool json)
    {
        var config = precision.Apply(ModelConfig.Load(dir));
        var prompts = RetrievalPrompts.Read(promptPath, config.VocabSize);
        using var weights = ModelWeights.Load(dir, config, precision.KvCache);
        var clock = Stopwatch.StartNew();
        var scores = new List<Score>();
        int[][]? denseAnswers = null;
        string deviceName = "";

        // Dense first: the other strategies' answers are compared with its.
        var runs = new List<(int Ranks, string[] Strategies)>();
        if (strategies.Contains(StrategyNames.Dense)) runs.Add((1, [StrategyNames.Dense]));
        var others = strategies.Where(s => s != StrategyNames.Dense).ToArray();
        if (others.Length > 0) runs.AddRange(rankCounts.Select(n => (n, others)));
        foreach (var (ranks, names) in runs)
        {
            using var group = Devices.Local(config, weights, device, ranks, Math.Min(gpus, ranks), tensorRanks: 1, attention: "auto", threads, precision.Fp8Attention);
            deviceName = group.Device;
            using var engine = new InferenceEngine(config, group);
            foreach (var strategy in names)
            {
                var start = clock.Elapsed;
                var answers = prompts.Select(p => Answer(engine, p, strategy, anchor, passing, evenBlocks)).ToArray();
                if (strategy == StrategyNames.Dense) denseAnswers = answers;
                var cells = Tally(prompts, answers, denseAnswers, strategy, ranks);
                scores.AddRange(cells);
                Console.Error.WriteLine($"{strategy} on {ranks} rank(s) ({group.Device}): " +
                    string.Join(", ", cells.Select(c => $"{c.Task} {c.Context}: {c.Correct}/{c.Total}")) + $" [{(clock.Elapsed - start).TotalSeconds:0.0} s]");
            }
        }
        Report(scores, config, deviceName, promptPath, denseAnswers is not null, PrecisionReport.Of(weights, device, precision.Fp8Attention), json);
        return 0;
    }

    /// <summary>The greedy answer of one prompt: as many tokens as the expected answer, no stop tokens.</summary>
    private static int[] Answer(InferenceEngine engine, RetrievalPrompt p, string strategy, int? anchor, int? passing, bool evenBlocks)
    {
        var approximate = StrategyNames.IsApproximate(strategy) ? new ApproximateOptions(p.QueryTokens, anchor, passing, EvenBlocks: evenBlocks) : null;
        var request = new GenerationRequest(p.Ids, p.Answer.Length, new SamplingOptions(), strategy, Approximate: approximate);
        var sequence = engine.NewSequence();
        try
        {
            return [.. engine.Generate(sequence, request).Tokens];
        }
        finally
        {
            engine.Release(sequence);
        }
    }

    private static List<Score> Tally(List<RetrievalPrompt> prompts, int[][] answers, int[][]? dense, string strategy, int ranks) =>
        prompts.Select((p, i) => (p, i)).GroupBy(x => (x.p.Task, x.p.Context)).OrderBy(g => g.Key.Task, StringComparer.Ordinal).ThenBy(g => g.Key.Context)
            .Select(g => new Score(g.Key.Task, g.Key.Context, strategy, ranks,
                Correct: g.Count(x => answers[x.i].SequenceEqual(x.p.Answer)),
                SameAsDense: dense is null ? 0 : g.Count(x => answers[x.i].SequenceEqual(dense[x.i])),
                Total: g.Count()))
            .ToList();

    private static void Report(List<Score> scores, ModelConfig config, string device, string promptPath, bool withDense, JsonObject dtypes, bool json)
    {
        var ordered = scores.OrderBy(s => s.Task, StringComparer.Ordinal).ThenBy(s => s.Context)
            .ThenBy(s => Array.IndexOf(StrategyNames.All, s.Strategy)).ThenBy(s => s.Ranks).ToList();
        if (json)
        {
            var rows = new JsonArray();
            foreach (var s in ordered)
            {
                var o = new JsonObject
                {
                    ["task"] = s.Task, ["context"] = s.Context, ["strategy"] = s.Strategy, ["ranks"] = s.Ranks,
                    ["correct"] = s.Correct, ["total"] = s.Total, ["accuracy"] = Math.Round(100.0 * s.Correct / s.Total, 2),
                };
                if (withDense) o["same_as_dense"] = s.SameAsDense;
                rows.Add((JsonNode)o);
            }
            Console.WriteLine(new JsonObject { ["model"] = config.ToString(), ["device"] = device, ["dtypes"] = dtypes, ["prompts"] = promptPath, ["results"] = rows }.ToJsonString());
            return;
        }
        var table = new Table().AddColumns("task", "context", "strategy", "ranks", "accuracy", "correct");
        if (withDense) table.AddColumn("same as dense");
        foreach (var s in ordered)
        {
            var cells = new List<string> { s.Task, s.Context.ToString(), s.Strategy, s.Ranks.ToString(), $"{100.0 * s.Correct / s.Total:0.0}%", $"{s.Correct}/{s.Total}" };
            if (withDense) cells.Add($"{s.SameAsDense}/{s.Total}");
            table.AddRow(cells.ToArray());
        }
        Console.WriteLine($"{config}\n{device}\n{string.Join(", ", dtypes.Select(d => $"{d.Key} {d.Value}"))}");
        AnsiConsole.Write(table);
    }

    private static string[] Strategies(string list)
    {
        var names = list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct().ToArray();
        if (names.Length == 0) throw new LongCtxException("--strategies is empty: give e.g. dense,pass-kv,star,apb");
        foreach (var n in names)
            if (StrategyNames.Validate(n) == StrategyNames.Auto)
                throw new LongCtxException("--strategies: auto is not a strategy to evaluate; name dense, pass-kv, pass-q, star or apb");
        return names;
    }
}
