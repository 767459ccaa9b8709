using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net.ServerSentEvents;
using System.Text;
using System.Text.Json;
using LongCtx.Server;
using LongCtx.Tests.Engine;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Models;

namespace LongCtx.Tests.Server;

/// <summary>One server with an API key for the SDK's tests.</summary>
public sealed class SdkServer : IAsyncLifetime
{
    public const string Key = "sk-longctx-test";
    internal TestServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await TestServer.Start(ReferenceModel.TinyLlama3, options: new ServerOptions { ApiKeys = [Key] });
    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>
/// The official OpenAI .NET SDK (NuGet OpenAI 2.15) as a client: chat and completions, streamed and not, with logprobs,
/// read back as the raw HTTP answers say; models.retrieve; an error as the SDK's ClientResultException; the API key. The
/// SDK keeps its legacy completions client internal, so completions go through the SDK's own pipeline (its transport,
/// key, retries and error classification), as its protocol methods send requests.
/// </summary>
public class OpenAiSdkTests(SdkServer fixture) : IClassFixture<SdkServer>
{
    private TestServer S => fixture.Server;
    private OpenAIClientOptions Options => new() { Endpoint = new Uri(S.Server.Address, "v1") };
    private ChatClient Chat(string key = SdkServer.Key) => new("tiny-llama3", new ApiKeyCredential(key), Options);

    private static readonly OpenAI.Chat.ChatMessage[] Messages = [new SystemChatMessage("You are terse."), new UserChatMessage("Name a colour.")];
    private const string MessagesJson = """[{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a colour."}]""";

    [Fact]
    public async Task ChatAsTheSdkReadsItIsTheRawAnswer()
    {
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 8, Temperature = 0, IncludeLogProbabilities = true, TopLogProbabilityCount = 2 };
        ChatCompletion completion = await Chat().CompleteChatAsync(Messages, options);
        var raw = await Raw("/v1/chat/completions", $$"""{"messages": {{MessagesJson}}, "max_completion_tokens": 8, "temperature": 0, "logprobs": true, "top_logprobs": 2}""");
        var choice = raw.GetProperty("choices")[0];

        Assert.Equal(choice.GetProperty("message").GetProperty("content").GetString(), completion.Content[0].Text);
        Assert.Equal(choice.GetProperty("finish_reason").GetString() == "stop" ? ChatFinishReason.Stop : ChatFinishReason.Length, completion.FinishReason);
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.Equal("tiny-llama3", completion.Model);
        Assert.Equal(raw.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), completion.Usage.InputTokenCount);
        Assert.Equal(raw.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), completion.Usage.OutputTokenCount);
        var logprobs = choice.GetProperty("logprobs").GetProperty("content").EnumerateArray().ToList();
        Assert.Equal(completion.Usage.OutputTokenCount, completion.ContentTokenLogProbabilities.Count);
        for (int i = 0; i < logprobs.Count; i++)
        {
            var sdk = completion.ContentTokenLogProbabilities[i];
            Assert.Equal(logprobs[i].GetProperty("token").GetString(), sdk.Token);
            Assert.Equal(logprobs[i].GetProperty("logprob").GetSingle(), sdk.LogProbability);
            Assert.Equal(2, sdk.TopLogProbabilities.Count);
            Assert.True(sdk.LogProbability <= sdk.TopLogProbabilities[0].LogProbability);
        }
    }

    [Fact]
    public async Task StreamedChatAsTheSdkReadsItIsTheWholeAnswer()
    {
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 8, Temperature = 0 };
        ChatCompletion whole = await Chat().CompleteChatAsync(Messages, options);
        var text = new StringBuilder();
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        int updates = 0;
        await foreach (var update in Chat().CompleteChatStreamingAsync(Messages, options))
        {
            updates++;
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
            finish ??= update.FinishReason;
            usage ??= update.Usage;
        }
        Assert.True(updates > 2);
        Assert.Equal(whole.Content[0].Text, text.ToString());
        Assert.Equal(whole.FinishReason, finish);
        Assert.Equal(whole.Usage.OutputTokenCount, usage?.OutputTokenCount);
    }

    [Fact]
    public async Task CompletionsThroughTheSdksClientStreamedAndNot()
    {
        var pipeline = new OpenAIClient(new ApiKeyCredential(SdkServer.Key), Options).Pipeline;
        const string body = """{"model": "tiny-llama3", "prompt": "The capital of France is", "max_tokens": 6, "temperature": 0, "logprobs": 2}""";
        var whole = JsonDocument.Parse((await Completion(pipeline, body, buffer: true)).Content.ToString()).RootElement;
        var choice = whole.GetProperty("choices")[0];
        Assert.Equal("text_completion", whole.GetProperty("object").GetString());
        Assert.Equal(whole.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), choice.GetProperty("logprobs").GetProperty("tokens").GetArrayLength());

        string streamed = body.Replace("\"logprobs\": 2", "\"logprobs\": 2, \"stream\": true", StringComparison.Ordinal);
        using var stream = await Completion(pipeline, streamed, buffer: false);
        var text = new StringBuilder();
        int tokens = 0;
        bool done = false;
        await foreach (var item in SseParser.Create(stream.ContentStream!).EnumerateAsync())
        {
            if (item.Data == "[DONE]") { done = true; break; }
            var c = JsonDocument.Parse(item.Data).RootElement.GetProperty("choices")[0];
            text.Append(c.GetProperty("text").GetString());
            if (c.GetProperty("logprobs").ValueKind == JsonValueKind.Object) tokens += c.GetProperty("logprobs").GetProperty("tokens").GetArrayLength();
        }
        Assert.True(done);
        Assert.Equal(choice.GetProperty("text").GetString(), text.ToString());
        Assert.Equal(whole.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), tokens);
    }

    [Fact]
    public async Task ModelsRetrieve()
    {
        var models = new OpenAIModelClient(new ApiKeyCredential(SdkServer.Key), Options);
        OpenAIModel model = await models.GetModelAsync("tiny-llama3");
        Assert.Equal("tiny-llama3", model.Id);
        Assert.Equal("longctx", model.OwnedBy);
        Assert.InRange(model.CreatedAt, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddMinutes(1));
        var missing = await Assert.ThrowsAsync<ClientResultException>(() => models.GetModelAsync("gpt-4o"));
        Assert.Equal(404, missing.Status);
    }

    [Fact]
    public async Task ARefusedRequestIsTheSdksException()
    {
        var e = await Assert.ThrowsAsync<ClientResultException>(() => Chat().CompleteChatAsync(Messages, new ChatCompletionOptions { MaxOutputTokenCount = 1_000_000 }));
        Assert.Equal(400, e.Status);
        Assert.Contains("context window", e.Message);
        var error = JsonDocument.Parse(e.GetRawResponse()!.Content.ToString()).RootElement.GetProperty("error");
        Assert.Equal("max_completion_tokens", error.GetProperty("param").GetString());
    }

    [Fact]
    public async Task TheApiKeyIsRequired()
    {
        var e = await Assert.ThrowsAsync<ClientResultException>(() => Chat("sk-wrong").CompleteChatAsync(Messages, new ChatCompletionOptions { MaxOutputTokenCount = 2 }));
        Assert.Equal(401, e.Status);
        Assert.NotNull((await Chat().CompleteChatAsync(Messages, new ChatCompletionOptions { MaxOutputTokenCount = 2 })).Value.Content);
    }

    /// <summary>POST /v1/completions through the SDK's pipeline, as a protocol method sends it; an error status is the SDK's exception.</summary>
    private async Task<PipelineResponse> Completion(ClientPipeline pipeline, string json, bool buffer)
    {
        var message = pipeline.CreateMessage();
        message.Request.Method = "POST";
        message.Request.Uri = new Uri(S.Server.Address, "v1/completions");
        message.Request.Headers.Set("Content-Type", "application/json");
        message.Request.Content = BinaryContent.Create(BinaryData.FromString(json));
        message.BufferResponse = buffer;
        await pipeline.SendAsync(message);
        var response = message.ExtractResponse()!;
        return response.IsError ? throw new ClientResultException(response) : response;
    }

    private async Task<JsonElement> Raw(string path, string json)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new("Bearer", SdkServer.Key);
        using var response = await S.Http.SendAsync(request);
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        return JsonDocument.Parse(text).RootElement.Clone();
    }
}
