using LongCtx.Tests.Model;

namespace LongCtx.Tests.Architecture;

/// <summary>
/// The layers of LongCtx.Core (and of LongCtx.Cuda) use each other one way only: no namespace reaches back to one that uses it, however
/// indirectly (a cycle means a lower layer names a type of a higher one). Read from the compiled assembly, method bodies
/// included, so a fully qualified name in code counts as much as a using directive.
/// </summary>
public class NamespaceCycleTests
{
    [Fact]
    public void CoreHasNoNamespaceCycle()
    {
        var graph = NamespaceGraph.Of(typeof(LongCtxException).Assembly);
        var cycle = NamespaceGraph.FindCycle(graph);
        Assert.True(cycle is null, $"namespace cycle in LongCtx.Core: {string.Join(" -> ", cycle ?? [])}");
    }

    [Fact]
    public void CudaHasNoNamespaceCycle()
    {
        var cycle = NamespaceGraph.FindCycle(NamespaceGraph.Of(typeof(LongCtx.Cuda.CudaSettings).Assembly));
        Assert.True(cycle is null, $"namespace cycle in LongCtx.Cuda: {string.Join(" -> ", cycle ?? [])}");
    }

    [Fact]
    public void TheGraphSeesEveryKindOfUse()
    {
        // The check must fail on a cycle: these edges are known to exist, through a signature, a base type and a body.
        var graph = NamespaceGraph.Of(typeof(LongCtxException).Assembly);
        Assert.Contains("LongCtx.Tensors", graph["LongCtx.Backends"]);
        Assert.Contains("LongCtx.Backends", graph["LongCtx.Backends.Cpu"]);
        Assert.Contains("LongCtx.ContextParallel", graph["LongCtx.Engine"]);
        Assert.Null(NamespaceGraph.FindCycle(new() { ["a"] = ["b"], ["b"] = ["c"] }));
        Assert.Equal(["a", "b", "a"], NamespaceGraph.FindCycle(new() { ["a"] = ["b"], ["b"] = ["a"] }));
    }

    [Fact]
    public void EveryCoreNamespaceIsAFolder()
    {
        // Namespaces follow folders, so the graph above is the folder layout's.
        var root = Path.Combine(ModelFixtures.RepoRoot, "src", "LongCtx.Core");
        foreach (var ns in typeof(LongCtxException).Assembly.GetTypes().Select(t => t.Namespace).OfType<string>().Where(n => n.StartsWith("LongCtx", StringComparison.Ordinal)).Distinct())
        {
            string folder = Path.Combine([root, .. ns.Split('.').Skip(1)]);
            Assert.True(Directory.Exists(folder), $"namespace {ns} has no folder {folder}");
        }
    }
}
