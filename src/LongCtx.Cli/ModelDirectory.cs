namespace LongCtx.Cli;

/// <summary>
/// Where a --model argument points: a directory as given, or a Hugging Face repo id ("org/name") looked up
/// offline in the hub cache the way huggingface_hub lays it out: HF_HUB_CACHE, else HF_HOME/hub, else
/// ~/.cache/huggingface/hub (XDG_CACHE_HOME honoured), holding models--org--name/snapshots/&lt;commit&gt;/ whose
/// files are links into blobs/; refs/&lt;revision&gt; names the commit ("main" unless --revision says).
/// </summary>
public static class ModelDirectory
{
    public static string Resolve(string model, string? revision = null)
    {
        if (Directory.Exists(model))
        {
            if (revision is not null) throw new LongCtxException($"--revision {revision} applies to a repo id, but --model {model} is a directory");
            return model;
        }
        if (!LooksLikeRepoId(model))
            throw new LongCtxException($"model directory {model} does not exist: pass a Hugging Face model directory (config.json + model.safetensors) or a repo id (org/name) in the Hugging Face cache");
        string rev = revision ?? "main";
        var looked = new List<string>();
        foreach (string hub in CacheRoots())
        {
            string repo = Path.Combine(hub, "models--" + model.Replace("/", "--"));
            string refFile = Path.Combine(repo, "refs", rev);
            string? commit = File.Exists(refFile) ? File.ReadAllText(refFile).Trim() : null;
            string snapshot = Path.Combine(repo, "snapshots", commit ?? rev);
            looked.Add(commit is null ? $"{refFile} / {snapshot}" : snapshot);
            if (Directory.Exists(snapshot)) return snapshot;
        }
        throw new LongCtxException($"--model {model}: not a directory and not in the Hugging Face cache at revision {rev} (looked for {string.Join("; ", looked)}): " +
                                   $"download it first (huggingface-cli download {model}) or pass its directory");
    }

    /// <summary>org/name: two non-empty parts, neither a path step, no further separator.</summary>
    private static bool LooksLikeRepoId(string s)
    {
        var parts = s.Split('/');
        return parts.Length == 2 && parts.All(p => p.Length > 0 && p is not ("." or "..") && !p.Contains('\\')) && !s.StartsWith('~');
    }

    /// <summary>The hub caches in the order huggingface_hub would pick them (the first set variable wins).</summary>
    public static IReadOnlyList<string> CacheRoots()
    {
        if (Environment.GetEnvironmentVariable("HF_HUB_CACHE") is { Length: > 0 } hub) return [hub];
        if (Environment.GetEnvironmentVariable("HF_HOME") is { Length: > 0 } home) return [Path.Combine(home, "hub")];
        string cache = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg
            ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return [Path.Combine(cache, "huggingface", "hub")];
    }
}
