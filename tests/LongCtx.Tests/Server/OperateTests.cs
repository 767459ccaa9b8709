using System.Text;
using System.Text.Json;
using Xunit.Abstractions;

namespace LongCtx.Tests.Server;

/// <summary>
/// `longctx serve` as an operator runs it: SIGTERM drains (no new connections; a stream in flight ends with a final chunk
/// and [DONE] by --shutdown-timeout; the process exits 0), every request leaves an access-log line on stderr, and
/// --verbose logs every engine step.
/// </summary>
public class OperateTests(ITestOutputHelper output)
{
    [Fact]
    public async Task SigtermEndsEveryStreamWithAFinalChunkAndExitsZero()
    {
        using var p = ServeProcess.Start("--shutdown-timeout", "3");
        var address = await p.Address();
        using var http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromMinutes(1) };
        // A stream that cannot finish before the deadline, and a short request that can.
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent("""{"prompt": [128000, 791, 6864], "max_tokens": 100000, "temperature": 0, "stream": true}""", Encoding.UTF8, "application/json"),
        };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var lines = new List<string>();
        while (lines.Count(l => l.StartsWith("data: ", StringComparison.Ordinal)) < 3) lines.Add(await reader.ReadLineAsync() ?? throw new InvalidOperationException("the stream ended early"));
        using var shortOne = new HttpClient { BaseAddress = address };
        var finishing = shortOne.PostAsync("/v1/completions", new StringContent("""{"prompt": [128000, 791], "max_tokens": 30, "temperature": 0}""", Encoding.UTF8, "application/json"));

        p.Terminate();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (await reader.ReadLineAsync() is { } line) lines.Add(line);
        var events = lines.Where(l => l.StartsWith("data: ", StringComparison.Ordinal)).Select(l => l["data: ".Length..]).ToList();
        output.WriteLine($"the stream ended {clock.Elapsed.TotalSeconds:0.0} s after SIGTERM with {events.Count} events");
        Assert.Equal("[DONE]", events[^1]);
        var last = JsonDocument.Parse(events[^2]).RootElement;
        Assert.Equal("length", last.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.True(TestServer.TokenIds(last).Length >= 3);
        Assert.Equal(200, (int)(await finishing).StatusCode);
        await Assert.ThrowsAsync<HttpRequestException>(() => new HttpClient { BaseAddress = address }.GetAsync("/health")); // no new connections

        Assert.Equal(0, await p.Exit(TimeSpan.FromSeconds(30)));
        Assert.Contains("stopped", p.Stdout);
        // The access log: the stream's line, with its route, status and token counts.
        Assert.Contains(p.Stderr, l => l.Contains("POST /v1/completions 200 prompt=3 cached=0 generated=", StringComparison.Ordinal));
    }

    [Fact]
    public async Task VerboseLogsEveryStep()
    {
        using var p = ServeProcess.Start("--verbose", "--max-num-batched-tokens", "64");
        using var http = new HttpClient { BaseAddress = await p.Address(), Timeout = TimeSpan.FromMinutes(1) };
        string prompt = string.Join(",", Enumerable.Range(0, 300).Select(i => 1000 + i));
        var response = await http.PostAsync("/v1/completions", new StringContent($$"""{"prompt": [{{prompt}}], "max_tokens": 4, "temperature": 0}""", Encoding.UTF8, "application/json"));
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        for (int i = 0; i < 50 && !p.Stderr.Any(l => l.Contains("POST /v1/completions 200", StringComparison.Ordinal)); i++) await Task.Delay(100);
        var steps = p.Stderr.Where(l => l.Contains("step: ", StringComparison.Ordinal)).ToList();
        // 300 prompt tokens in chunks of at most 64: five steps prefill, logged with how far the prompt got.
        Assert.True(steps.Count >= 5, string.Join("\n", p.Stderr));
        Assert.Contains(steps, l => l.Contains("/300", StringComparison.Ordinal));
        Assert.Contains(p.Stderr, l => l.Contains("POST /v1/completions 200 prompt=300 cached=0 generated=4", StringComparison.Ordinal));
    }
}
