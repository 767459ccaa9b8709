using LongCtx.Cli;
using LongCtx.Model;
using LongCtx.Tests.Cli;
using LongCtx.Tests.Engine;

namespace LongCtx.Tests.Model;

/// <summary>
/// Model directories as they are on users' disks: the Hugging Face hub cache (snapshots of symlinks into blobs/,
/// by repo id and revision), a plain directory of links, a sharded index whose shards are links. Each must give the
/// tiny-llama3 fixture's reference tokens and logits.
/// </summary>
public class ModelDirectoryTests
{
    private const string Commit = "0123456789abcdef0123456789abcdef01234567";

    /// <summary>HUB/models--test--tiny-llama3 as huggingface_hub writes it: blobs named by hash, a snapshot of relative links, refs/main.</summary>
    private static string MakeHubCache(string hub, bool sharded)
    {
        var reference = ReferenceModel.TinyLlama3;
        string repo = Path.Combine(hub, "models--test--tiny-llama3");
        string blobs = Path.Combine(repo, "blobs"), snapshot = Path.Combine(repo, "snapshots", Commit);
        Directory.CreateDirectory(blobs);
        Directory.CreateDirectory(snapshot);
        Directory.CreateDirectory(Path.Combine(repo, "refs"));
        File.WriteAllText(Path.Combine(repo, "refs", "main"), Commit);
        int blob = 0;
        void Link(string name, Action<string> write)
        {
            string target = Path.Combine(blobs, $"blob{blob++:x40}");
            write(target);
            File.CreateSymbolicLink(Path.Combine(snapshot, name), Path.GetRelativePath(snapshot, target));
        }
        Link("config.json", t => File.Copy(Path.Combine(reference.Directory, "config.json"), t));
        if (!sharded) Link(SafetensorsWeights.SingleFileName, t => File.Copy(Path.Combine(reference.Directory, SafetensorsWeights.SingleFileName), t));
        else
        {
            using var whole = SafetensorsFile.Open(Path.Combine(reference.Directory, SafetensorsWeights.SingleFileName));
            var names = whole.Tensors.Keys.Order(StringComparer.Ordinal).ToArray();
            var shards = new[] { names[..(names.Length / 2)], names[(names.Length / 2)..] };
            var map = new List<string>();
            for (int s = 0; s < 2; s++)
            {
                string file = $"model-{s + 1:00000}-of-00002.safetensors";
                Link(file, t => SafetensorsWriter.Write(t, shards[s].Select(n =>
                    (n, whole.Get(n).DType, whole.Get(n).Shape, (ReadOnlyMemory<byte>)ModelFixtures.Bytes(whole.Get(n))))));
                map.AddRange(shards[s].Select(n => $"\"{n}\": \"{file}\""));
            }
            Link(SafetensorsWeights.IndexFileName, t => File.WriteAllText(t, $"{{\"metadata\": {{}}, \"weight_map\": {{{string.Join(", ", map)}}}}}"));
        }
        return snapshot;
    }

    private static (CliRunner.Result Result, string Dump) Generate(ModelFixtures.TempDir dir, string model, Dictionary<string, string> environment, params string[] extra)
    {
        var reference = ReferenceModel.TinyLlama3;
        File.WriteAllText(dir.File("ids.json"), $"[{string.Join(',', reference.InputIds)}]");
        string dump = dir.File("logits.safetensors");
        return (CliRunner.RunWithEnvironment(environment, ["generate", "--model", model, "--prompt-ids", dir.File("ids.json"), "--temperature", "0",
            "--max-new-tokens", "16", "--dump-logits", dump, "--dump-last", "4", "--json", .. extra]), dump);
    }

    [Fact]
    public void Repo_id_through_HF_HOME_gives_the_reference()
    {
        using var dir = ModelFixtures.NewTempDir();
        MakeHubCache(Path.Combine(dir.Path, "hf", "hub"), sharded: false);
        var (r, dump) = Generate(dir, "test/tiny-llama3", new() { ["HF_HOME"] = Path.Combine(dir.Path, "hf"), ["HF_HUB_CACHE"] = "" }, "--strategy", "dense");
        FixtureGeneration.AssertMatchesReference(r, dump, ReferenceModel.TinyLlama3, ranks: 1, strategy: "dense");
    }

    [Fact]
    public void Sharded_index_of_links_by_revision_through_HF_HUB_CACHE_gives_the_reference()
    {
        using var dir = ModelFixtures.NewTempDir();
        string hub = Path.Combine(dir.Path, "cache");
        MakeHubCache(hub, sharded: true);
        var (r, dump) = Generate(dir, "test/tiny-llama3", new() { ["HF_HUB_CACHE"] = hub }, "--revision", Commit, "--ranks", "2", "--strategy", "pass-kv");
        FixtureGeneration.AssertMatchesReference(r, dump, ReferenceModel.TinyLlama3, ranks: 2, strategy: "pass-kv");
    }

    [Fact]
    public void Directory_of_symlinks_into_a_blob_folder_gives_the_reference()
    {
        using var dir = ModelFixtures.NewTempDir();
        string snapshot = MakeHubCache(Path.Combine(dir.Path, "hub"), sharded: false);
        Assert.True(new FileInfo(Path.Combine(snapshot, SafetensorsWeights.SingleFileName)).LinkTarget is not null);
        var (r, dump) = Generate(dir, snapshot, new(), "--strategy", "dense");
        FixtureGeneration.AssertMatchesReference(r, dump, ReferenceModel.TinyLlama3, ranks: 1, strategy: "dense");
    }

    [Fact]
    public void Missing_repo_id_lists_where_it_looked()
    {
        using var dir = ModelFixtures.NewTempDir();
        var r = CliRunner.RunWithEnvironment(new() { ["HF_HUB_CACHE"] = dir.Path }, "generate", "--model", "nobody/nothing", "--prompt", "hi");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--model nobody/nothing: not a directory and not in the Hugging Face cache", r.Stderr);
        Assert.Contains(Path.Combine(dir.Path, "models--nobody--nothing", "refs", "main"), r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
    }

    [Fact]
    public void Cache_roots_follow_huggingface_hub_precedence()
    {
        var saved = new[] { "HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME" }.ToDictionary(v => v, Environment.GetEnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", "/a/hub");
            Environment.SetEnvironmentVariable("HF_HOME", "/b");
            Assert.Equal(["/a/hub"], ModelDirectory.CacheRoots());
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", null);
            Assert.Equal(["/b/hub"], ModelDirectory.CacheRoots());
            Environment.SetEnvironmentVariable("HF_HOME", null);
            Environment.SetEnvironmentVariable("XDG_CACHE_HOME", "/c");
            Assert.Equal(["/c/huggingface/hub"], ModelDirectory.CacheRoots());
        }
        finally
        {
            foreach (var (k, v) in saved) Environment.SetEnvironmentVariable(k, v);
        }
    }
}
