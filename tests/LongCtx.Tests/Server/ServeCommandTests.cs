using System.Diagnostics;
using System.Text.Json;
using LongCtx.Tests.Engine;
using LongCtx.Tests.Text;

namespace LongCtx.Tests.Server;

/// <summary>`longctx serve` as a user starts it: it says where it listens and on which ranks, and answers there.</summary>
public class ServeCommandTests
{
    [Theory]
    [InlineData("--ranks", "2", 2, "on 2 rank(s)")]
    [InlineData("--tp", "2", 1, "on 1 context x 2 tensor ranks")]
    public async Task ServesOnTheAddressItPrints(string option, string value, int ranks, string servedOn)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "longctx.dll"), "serve", "--model", ReferenceModel.TinyLlama3.Directory,
                     "--tokenizer", TokenizerFixtures.FetchedDir("llama3"), "--port", "0", option, value })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        try
        {
            string? address = null, serving = null;
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            while (address is null)
            {
                var line = await p.StandardOutput.ReadLineAsync(timeout.Token);
                Assert.True(line is not null, "longctx serve exited before it listened");
                if (line.StartsWith("serving ")) serving = line;
                if (line.StartsWith("listening on ")) address = line["listening on ".Length..];
            }
            Assert.Contains(servedOn, serving);
            using var http = new HttpClient { BaseAddress = new Uri(address), Timeout = TimeSpan.FromSeconds(30) };
            var models = JsonDocument.Parse(await http.GetStringAsync("/v1/models")).RootElement;
            Assert.Equal("tiny-llama3", models.GetProperty("data")[0].GetProperty("id").GetString());
            Assert.Equal(ranks, models.GetProperty("data")[0].GetProperty("ranks").GetInt32());
            var completion = await http.PostAsync("/v1/completions", new StringContent("""{"prompt": [128000, 791, 6864], "max_tokens": 3, "temperature": 0}""", System.Text.Encoding.UTF8, "application/json"));
            Assert.True(completion.IsSuccessStatusCode, await completion.Content.ReadAsStringAsync());
        }
        finally
        {
            p.Kill();
            p.WaitForExit(TimeSpan.FromSeconds(10));
        }
    }

    /// <summary>vLLM's flags where users reach for them: `serve MODEL`, several --served-model-name, --max-model-len, --api-key, --seed.</summary>
    [Fact]
    public async Task TakesVllmsFlags()
    {
        using var p = ServeProcess.StartWith(ReferenceModel.TinyLlama3.Directory, "--served-model-name", "llama-tiny", "tiny", "--max-model-len", "4096", "--api-key", "sk-a",
            "--seed", "3", "--tensor-parallel-size", "2");
        using var http = new HttpClient { BaseAddress = await p.Address(), Timeout = TimeSpan.FromSeconds(30) };
        http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "sk-a");
        var models = JsonDocument.Parse(await http.GetStringAsync("/v1/models")).RootElement.GetProperty("data");
        Assert.Equal(["llama-tiny", "tiny"], models.EnumerateArray().Select(m => m.GetProperty("id").GetString()!));
        Assert.All(models.EnumerateArray(), m => Assert.Equal(4096, m.GetProperty("max_model_len").GetInt32()));
        async Task<(int, JsonElement)> Complete(string json)
        {
            var response = await http.PostAsync("/v1/completions", new StringContent(json, System.Text.Encoding.UTF8, "application/json"));
            return ((int)response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement);
        }
        var (ok, first) = await Complete("""{"model": "tiny", "prompt": [128000, 791], "max_tokens": 4, "temperature": 1}""");
        Assert.True(ok == 200, first.ToString());
        Assert.Equal("llama-tiny", first.GetProperty("model").GetString());
        var (tooLong, error) = await Complete("""{"prompt": [128000, 791], "max_tokens": 4095}""");
        Assert.Equal(400, tooLong);
        Assert.Contains("4096", error.GetProperty("error").GetProperty("message").GetString());
    }

    [Theory]
    [InlineData("error: --max-concurrent must be 1 or more", "--max-concurrent", "0")]
    [InlineData("error: --strategy dense runs on one rank; this server has 2: use pass-kv, pass-q or auto", "--ranks", "2", "--strategy", "dense")]
    [InlineData("error: --served-model-name must not be empty", "--served-model-name", "tiny", " ")]
    public void BadOptionIsOneLine(string error, params string[] options)
    {
        var r = LongCtx.Tests.Cli.CliRunner.Run(["serve", "--model", ReferenceModel.TinyLlama3.Directory, "--tokenizer", TokenizerFixtures.FetchedDir("llama3"), .. options]);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Equal(error, r.Stderr.Trim());
    }
}
