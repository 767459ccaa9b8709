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
        using var p = ServeProcess.Start("--shutdown-timeout", "5");
        var address = await p.Address();
        using var http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromMinutes(1) };
        // A stream that cannot finish before the deadline, and a short one that finishes during the drain.
        var endless = await Open(http, """{"prompt": [128000, 791, 6864], "max_tokens": 100000, "temperature": 0, "stream": true}""");
        var shortOne = await Open(http, """{"prompt": [128000, 791], "max_tokens": 20, "temperature": 0, "stream": true}""");

        p.Terminate();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var (endlessLast, endlessEvents) = await ReadToEnd(endless);
        output.WriteLine($"the stream ended {clock.Elapsed.TotalSeconds:0.0} s after SIGTERM with {endlessEvents} events");
        Assert.Equal("length", endlessLast.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.True(TestServer.TokenIds(endlessLast).Length >= 1);
        var (shortLast, _) = await ReadToEnd(shortOne);
        Assert.Equal(20, TestServer.TokenIds(shortLast).Length); // it finished, not cut
        await Assert.ThrowsAsync<HttpRequestException>(() => new HttpClient { BaseAddress = address }.GetAsync("/health")); // no new connections

        Assert.Equal(0, await p.Exit(TimeSpan.FromSeconds(30)));
        Assert.Contains("stopped", p.Stdout);
        // The access log: each stream's line, with its route, status and token counts.
        Assert.Contains(p.Stderr, l => l.Contains("POST /v1/completions 200 prompt=3 cached=0 generated=", StringComparison.Ordinal));
        Assert.Contains(p.Stderr, l => l.Contains("POST /v1/completions 200 prompt=2 cached=0 generated=20 ", StringComparison.Ordinal));
    }

    /// <summary>A stream that has sent its first token: it is in flight.</summary>
    private static async Task<StreamReader> Open(HttpClient http, string body)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        while (await reader.ReadLineAsync() is { } line && !line.StartsWith("data: ", StringComparison.Ordinal)) { }
        return reader;
    }

    /// <summary>Reads a stream to its end, which must be [DONE]: its last chunk and how many events it sent.</summary>
    private static async Task<(JsonElement Last, int Events)> ReadToEnd(StreamReader reader)
    {
        var events = new List<string>();
        while (await reader.ReadLineAsync() is { } line)
            if (line.StartsWith("data: ", StringComparison.Ordinal)) events.Add(line["data: ".Length..]);
        reader.Dispose();
        Assert.Equal("[DONE]", events[^1]);
        return (JsonDocument.Parse(events[^2]).RootElement.Clone(), events.Count);
    }

    [Fact]
    public async Task VerboseLogsEveryStep()
    {
        using var p = ServeProcess.Start("--verbose", "--max-num-batched-tokens", "64");
        using var http = new HttpClient { BaseAddress = await p.Address(), Timeout = TimeSpan.FromMinutes(1) };
        string prompt = string.Join(",", Enumerable.Range(0, 300).Select(i => 1000 + i));
        var response = await http.PostAsync("/v1/completions", new StringContent($$"""{"prompt": [{{prompt}}], "max_tokens": 4, "temperature": 0}""", Encoding.UTF8, "application/json"));
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        for (int i = 0; i < 150 && !p.Stderr.Any(l => l.Contains("POST /v1/completions 200", StringComparison.Ordinal)); i++) await Task.Delay(100);
        var steps = p.Stderr.Where(l => l.Contains("step: ", StringComparison.Ordinal)).ToList();
        // 300 prompt tokens in chunks of at most 64: five steps prefill, logged with how far the prompt got.
        Assert.True(steps.Count >= 5, string.Join("\n", p.Stderr));
        Assert.Contains(steps, l => l.Contains("/300", StringComparison.Ordinal));
        Assert.Contains(p.Stderr, l => l.Contains("POST /v1/completions 200 prompt=300 cached=0 generated=4", StringComparison.Ordinal));
    }
}
