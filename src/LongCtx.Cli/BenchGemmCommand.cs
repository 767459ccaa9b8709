using System.CommandLine;
using Spectre.Console;

namespace LongCtx.Cli;

/// <summary>
/// `longctx bench-gemm`: a model shape's projections on GPU 0 at a number of rows, bf16 against FP8 (LongCtx.Cuda's
/// GemmBenchmark measures): milliseconds and TFLOP/s, and the input quantisation apart.
/// </summary>
internal static class BenchGemmCommand
{
    public static Command Create()
    {
        var rows = new Option<int>("--rows") { Description = "rows of x (tokens of a prefill)", DefaultValueFactory = _ => 131072 };
        var repeat = new Option<int>("--repeat") { Description = "timed calls per GEMM after one warm-up (the mean counts)", DefaultValueFactory = _ => 5 };
        var json = new Option<bool>("--json") { Description = "print one JSON object" };
        var command = new Command("bench-gemm", "Time the 8B shape's projections on GPU 0: bf16 against FP8 (per row and per 128x128 block)");
        foreach (var o in new Option[] { rows, repeat, json }) command.Options.Add(o);
        command.SetAction(r => Run(r.GetValue(rows), Math.Max(1, r.GetValue(repeat)), r.GetValue(json)));
        return command;
    }

    private static int Run(int rows, int repeat, bool json)
    {
        if (rows < 1) throw new LongCtxException($"--rows {rows} must be 1 or more");
        var progress = new Progress(!json);
        var result = Devices.BenchGemm(rows, repeat, progress.Note);
        if (json)
        {
            Console.WriteLine(result.ToJsonString());
            return 0;
        }
        Console.WriteLine($"{result["device"]}, {rows} rows");
        string[] kinds = ["bf16", "fp8_rows", "fp8_rows_fast_accumulation", "fp8_blocks", "fp8_blocks_fast_accumulation", "quantize_rows", "quantize_groups"];
        var table = new Table().AddColumn("shape").AddColumns(kinds.Select(k => $"{k} ms (TFLOP/s)").ToArray());
        foreach (var p in result["points"]!.AsArray().Select(p => p!.AsObject()))
            table.AddRow([$"{p["shape"]} {p["k"]}x{p["n"]}", .. kinds.Select(k => p[$"{k}_ms"] is { } ms
                ? $"{ms.GetValue<double>():0.00} ({p[$"{k}_tflops"]!.GetValue<double>():0})" : p[$"{k}_error"] is not null ? "failed" : "")]);
        AnsiConsole.Write(table);
        return 0;
    }
}
