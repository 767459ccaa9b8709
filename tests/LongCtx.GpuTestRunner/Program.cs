// The GPU machine has no .NET SDK, only what is carried there self-contained, so `dotnet test` cannot run the
// [GpuTheory] tests on the one machine where they do not skip. This runs them without xunit's runner: found by
// reflection, one line per case, the count last; exit 1 if any failed, 2 if none was found (all skipped is 0).
// scripts/gpu.sh publish packs it into .publish/gpu-tests.tar.xz; bench/gpu/run.sh (section tests) unpacks it
// to .publish/gpu-tests and runs it from the repository root.
//   LongCtx.GpuTestRunner [--filter SUBSTRING-OF-THE-FULL-TEST-NAME]
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using LongCtx.Tests.Gpu;
using Xunit.Sdk;

if (args is not ([] or ["--filter", _]))
{
    Console.Error.WriteLine("usage: LongCtx.GpuTestRunner [--filter SUBSTRING]");
    return 2;
}
string filter = args is [_, var f] ? f : "";

// Tests that start `longctx` (CliRunner) run `dotnet longctx.dll` unless told otherwise; here there is no
// dotnet, but scripts/gpu.sh publishes the self-contained longctx beside this folder.
if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("LONGCTX_CLI")))
    Environment.SetEnvironmentVariable("LONGCTX_CLI", Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "linux-x64", "longctx")));

int passed = 0, failed = 0, skipped = 0;
foreach (var (method, attribute) in GpuTests())
{
    // A data row may carry its own skip (GpuData: a case that needs more GPUs than there are), as xunit honours it.
    var rows = method.GetCustomAttributes<DataAttribute>().SelectMany(d => d.GetData(method).Select(row => (Row: row, Skip: (string?)d.Skip)))
        .DefaultIfEmpty(([], null));
    foreach (var (row, rowSkip) in rows)
    {
        string name = $"{method.DeclaringType!.Name}.{method.Name}({string.Join(", ", row.Select(a => a is string s ? $"\"{s}\"" : $"{a}"))})";
        if (!$"{method.DeclaringType.Namespace}.{name}".Contains(filter, StringComparison.Ordinal)) continue;
        if ((attribute.Skip ?? rowSkip) is { } reason)
        {
            skipped++;
            Console.WriteLine($"SKIP {name}: {reason}");
            continue;
        }
        var clock = Stopwatch.StartNew();
        try
        {
            await Run(method, row);
            passed++;
            Console.WriteLine($"PASS {name} {clock.Elapsed.TotalSeconds:F2} s");
        }
        catch (Exception e)
        {
            failed++;
            Console.WriteLine($"FAIL {name}: {e.Message.Split('\n')[0].TrimEnd()}");
            Console.Error.WriteLine($"{name} after {clock.Elapsed.TotalSeconds:F2} s:\n{e}\n");
        }
    }
}
Console.WriteLine($"gpu tests: {passed} passed, {failed} failed, {skipped} skipped");
return failed > 0 ? 1 : passed + skipped == 0 ? 2 : 0;

// Every public method of LongCtx.Tests marked [GpuTheory], in a stable order.
[UnconditionalSuppressMessage("Trimming", "IL2026", Justification = "TrimmerRoots.xml keeps the GPU tests' namespace whole")]
[UnconditionalSuppressMessage("Trimming", "IL2075", Justification = "TrimmerRoots.xml keeps the GPU tests' namespace whole")]
static IEnumerable<(MethodInfo Method, GpuTheoryAttribute Attribute)> GpuTests()
{
    foreach (var type in typeof(GpuTheoryAttribute).Assembly.GetTypes().Where(t => t.IsPublic).OrderBy(t => t.FullName, StringComparer.Ordinal))
        foreach (var method in type.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly).OrderBy(m => m.Name, StringComparer.Ordinal))
            if (method.GetCustomAttribute<GpuTheoryAttribute>() is { } attribute) yield return (method, attribute);
}

// One case as xunit would run it: a fresh instance of the class, awaited when the test returns a Task, disposed after.
[UnconditionalSuppressMessage("Trimming", "IL2075", Justification = "TrimmerRoots.xml keeps the GPU tests' constructors")]
static async Task Run(MethodInfo method, object?[] row)
{
    // The test's own exception, not reflection's TargetInvocationException around it, is the one to report.
    const BindingFlags Unwrapped = BindingFlags.DoNotWrapExceptions;
    var type = method.DeclaringType!;
    object? instance = null;
    if (!method.IsStatic)
        instance = type.GetConstructor(Type.EmptyTypes) is { } constructor
            ? constructor.Invoke(Unwrapped, null, null, null)
            : throw new InvalidOperationException($"{type.Name} takes constructor arguments (fixtures), which this runner does not supply");
    try
    {
        if (method.Invoke(instance, Unwrapped, null, row.Length == 0 ? null : row, null) is Task task) await task;
    }
    finally
    {
        if (instance is IAsyncDisposable asyncDisposable) await asyncDisposable.DisposeAsync();
        else if (instance is IDisposable disposable) disposable.Dispose();
    }
}
