using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using LongCtx.Approximate;
using LongCtx.ContextParallel;
using LongCtx.Engine;
using LongCtx.Model;
using LongCtx.Sampling;
using Spectre.Console;

namespace LongCtx.Cli;

/// <summary>
/// `longctx eval-retrieval`: retrieval accuracy of the attention strategies. Loads the model once, then for
/// every strategy and rank count prefills each prompt, greedily decodes as many tokens as its answer has,
/// and counts exact matches per task and context length. Dense runs once, on one rank; the others run at
/// every rank count. Star and APB take the prompt's question as their query. Also reports how often a
/// strategy's answer equals dense's, which separates "the approximation changed the output" from "the
/// model does not know", and the mean time to first token; --example then shows one prompt's answers.
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
        var threads = ThreadsOption.Create();
        var anchor = new Option<int?>("--anchor-tokens") { Description = "star/apb anchor length l_a (default: the engine's, docs/APB.md)" };
        var passing = new Option<int?>("--passing-tokens") { Description = "apb passing length l_p (default: the engine's)" };
        var evenBlocks = new Option<bool>("--even-blocks") { Description = "star and apb: split the document into equal blocks, as the papers do (default: blocks that give every rank the same work)" };
        var json = new Option<bool>("--json") { Description = "print one JSON object instead of the table" };
        var loadFormat = new Option<string>("--load-format") { Description = "auto (safetensors) or dummy (random weights of config.json: the plumbing, accuracy near 0)", DefaultValueFactory = _ => "auto" };
        var example = new Option<bool>("--example") { Description = "after the table, show one prompt: its question, where its record sits, each strategy's answer" };
        var precision = new PrecisionOptions();
        var command = new Command("eval-retrieval", "Retrieval accuracy of dense, pass-kv, star and apb over a prompt set");
        foreach (var o in new Option[] { model, prompts, strategies, ranks, device, gpus, threads, anchor, passing, evenBlocks, json, loadFormat, example }) command.Options.Add(o);
        foreach (var o in precision.All) command.Options.Add(o);
        command.SetAction(r =>
        {
            var d = r.GetValue(device)!;
            if (d is not ("cpu" or "cuda")) throw new LongCtxException($"--device {d} is unknown: use cpu or cuda");
            if (r.GetValue(anchor) < 0 || r.GetValue(passing) < 0) throw new LongCtxException("--anchor-tokens and --passing-tokens must be 0 or more");
            var rankCounts = BenchCommand.Ints(r.GetValue(ranks)!, "--ranks");
            if (rankCounts.Any(n => n < 1)) throw new LongCtxException($"--ranks {r.GetValue(ranks)}: rank counts must be 1 or more");
            if (r.GetValue(loadFormat) is not ("auto" or "dummy")) throw new LongCtxException($"--load-format {r.GetValue(loadFormat)} is unknown: use auto or dummy");
            return Run(r.GetValue(model)!, r.GetValue(prompts)!, Strategies(r.GetValue(strategies)!), rankCounts, d, r.GetValue(gpus),
                r.GetValue(threads), r.GetValue(anchor), r.GetValue(passing), r.GetValue(evenBlocks), precision.Read(r, d), r.GetValue(json), r.GetValue(loadFormat) == "dummy",
                r.GetValue(example));
        });
        return command;
    }

    private static int Run(string dir, string promptPath, string[] strategies, int[] rankCounts, string device, int gpus, int? threads,
        int? anchor, int? passing, bool evenBlocks, PrecisionChoice precision, bool json, bool dummy, bool example)
    {
        dir = ModelDirectory.Resolve(dir);
        var config = precision.Apply(ModelConfig.Load(dir));
        var prompts = RetrievalPrompts.Read(promptPath, config.VocabSize);
        using var weights = dummy ? ModelWeights.Dummy(config, seed: 0, kvCache: precision.KvCache) : ModelWeights.Load(dir, config, precision.KvCache);
        if (dummy) Console.Error.WriteLine("note: the weights are random (--load-format dummy): the answers are noise, the strategies and timings are real");
        int cores = threads ?? Environment.ProcessorCount;
        if (device == "cpu" && rankCounts.Max() > cores && strategies.Any(s => s != StrategyNames.Dense))
            Console.Error.WriteLine($"note: {rankCounts.Max()} CPU ranks share {cores} cores: ranks take turns on them, so more ranks are no faster here (on GPUs each rank has its own)");
        var clock = Stopwatch.StartNew();
        var scores = new List<Score>();
        var done = new List<StrategyAnswers>();
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
                var run = new StrategyAnswers(strategy, ranks, [.. answers.Select(a => a.Tokens)], [.. answers.Select(a => a.TtftMs)]);
                if (strategy == StrategyNames.Dense) denseAnswers = run.Answers;
                var cells = RetrievalTally.Rows(prompts, run, denseAnswers);
                scores.AddRange(cells);
                done.Add(run);
                Console.Error.WriteLine($"{strategy} on {ranks} rank(s) ({group.Device}): " +
                    string.Join(", ", cells.Select(c => $"{c.Task} {c.Context}: {c.Correct}/{c.Total}")) + $" [{(clock.Elapsed - start).TotalSeconds:0.0} s]");
            }
        }
        Report(scores, config, deviceName, promptPath, denseAnswers is not null, PrecisionReport.Of(weights, device, precision.Fp8Attention), json);
        if (example && !json) Console.WriteLine("\n" + RetrievalExample.Describe(prompts, RetrievalExample.Pick(prompts, done), done, TokenNames.Load(dir)));
        return 0;
    }

    /// <summary>The greedy answer of one prompt (as many tokens as the expected answer, no stop tokens) and its TTFT.</summary>
    private static (int[] Tokens, double TtftMs) Answer(InferenceEngine engine, RetrievalPrompt p, string strategy, int? anchor, int? passing, bool evenBlocks)
    {
        var approximate = StrategyNames.IsApproximate(strategy) ? new ApproximateOptions(p.QueryTokens, anchor, passing, EvenBlocks: evenBlocks) : null;
        var request = new GenerationRequest(p.Ids, p.Answer.Length, new SamplingOptions(), strategy, Approximate: approximate);
        var sequence = engine.NewSequence();
        try
        {
            var result = engine.Generate(sequence, request);
            return ([.. result.Tokens], result.TtftMs);
        }
        finally
        {
            engine.Release(sequence);
        }
    }

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
                    ["correct"] = s.Correct, ["total"] = s.Total, ["accuracy"] = Math.Round(s.Accuracy, 2), ["mean_ttft_ms"] = Math.Round(s.MeanTtftMs, 1),
                };
                if (withDense) o["same_as_dense"] = s.SameAsDense;
                rows.Add((JsonNode)o);
            }
            Console.WriteLine(new JsonObject { ["model"] = config.ToString(), ["device"] = device, ["dtypes"] = dtypes, ["prompts"] = promptPath, ["results"] = rows }.ToJsonString());
            return;
        }
        // One task (prompts.py's are all "kv") goes in the heading: its column would push the table past 80 characters.
        var tasks = ordered.Select(s => s.Task).Distinct().ToList();
        var table = new Table();
        if (tasks.Count > 1) table.AddColumn("task");
        table.AddColumns("context", "strategy", "ranks", "accuracy", "correct");
        if (withDense) table.AddColumn("same as dense");
        table.AddColumn("mean TTFT");
        foreach (var s in ordered)
        {
            var cells = new List<string> { s.Context.ToString(), s.Strategy, s.Ranks.ToString(), $"{s.Accuracy:0.0}%", $"{s.Correct}/{s.Total}" };
            if (tasks.Count > 1) cells.Insert(0, s.Task);
            if (withDense) cells.Add($"{s.SameAsDense}/{s.Total}");
            cells.Add(s.MeanTtftMs < 1000 ? $"{s.MeanTtftMs:0} ms" : $"{s.MeanTtftMs / 1000:0.00} s");
            table.AddRow(cells.ToArray());
        }
        Console.WriteLine($"{config}\n{device}\n{string.Join(", ", dtypes.Select(d => $"{d.Key} {d.Value}"))}" + (tasks.Count == 1 ? $"\ntask {tasks[0]}" : ""));
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
