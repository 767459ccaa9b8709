using System.Diagnostics;
using System.Text;
using LongCtx.Server;
using LongCtx.Tests.Engine;
using Xunit.Abstractions;

namespace LongCtx.Tests.Server;

/// <summary>
/// A long prefill does not freeze the other streams (chunked prefill beside decode): while one client streams, another
/// sends a prompt whose prefill takes seconds on the CPU; the streaming client's longest wait between two chunks is at
/// most a quarter of the long request's time to first token. Whole-prompt prefill made that wait the whole prefill.
/// </summary>
public class StreamingGapTests(ITestOutputHelper output)
{
    private const int LongPrompt = 12_000;

    [Fact]
    public async Task ALongPrefillLeavesOtherStreamsGoing()
    {
        await using var s = await TestServer.Start(ReferenceModel.TinyLlama3, options: new ServerOptions { MaxBatchTokens = 256 });
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent("""{"prompt": [128000, 791, 6864, 315], "max_tokens": 20000, "temperature": 0, "stream": true}""", Encoding.UTF8, "application/json"),
        };
        using var response = await s.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var clock = Stopwatch.StartNew();
        var chunks = new List<double>();
        async Task ReadChunk()
        {
            while (await reader.ReadLineAsync() is { } line)
                if (line.StartsWith("data: {", StringComparison.Ordinal))
                {
                    chunks.Add(clock.Elapsed.TotalSeconds);
                    return;
                }
            throw new InvalidOperationException($"the stream ended after {chunks.Count} chunks");
        }
        for (int i = 0; i < 5; i++) await ReadChunk();

        var random = new Random(7);
        string prompt = string.Join(",", Enumerable.Range(0, LongPrompt).Select(_ => random.Next(1000, 90000)));
        double sent = clock.Elapsed.TotalSeconds;
        var longRequest = Task.Run(async () =>
        {
            var answer = await s.Http.PostAsync("/v1/completions", new StringContent($$"""{"prompt": [{{prompt}}], "max_tokens": 1, "temperature": 0}""", Encoding.UTF8, "application/json"));
            Assert.True(answer.IsSuccessStatusCode, await answer.Content.ReadAsStringAsync());
            return clock.Elapsed.TotalSeconds;
        });
        while (!longRequest.IsCompleted) await ReadChunk();
        double firstToken = await longRequest, ttft = firstToken - sent;
        var during = chunks.Where(t => t >= sent).Prepend(chunks.Last(t => t < sent)).ToList();
        double longestGap = during.Zip(during.Skip(1), (a, b) => b - a).Max();
        output.WriteLine($"long prompt of {LongPrompt} tokens: time to first token {ttft:0.00} s; the other stream's longest gap meanwhile {longestGap:0.000} s over {during.Count - 1} chunks");
        Assert.True(during.Count > 10, $"only {during.Count - 1} chunks streamed during the long prefill");
        Assert.True(longestGap <= ttft / 4, $"the stream waited {longestGap:0.000} s between two chunks, more than a quarter of the long request's {ttft:0.00} s to its first token");
    }
}
