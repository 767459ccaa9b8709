using LongCtx.Tests.Engine;

namespace LongCtx.Tests.Server;

/// <summary>One tiny-llama3 server on one rank, shared by the tests of the "server" collection (they run one after another).</summary>
public sealed class LlamaServer : IAsyncLifetime
{
    internal TestServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await TestServer.Start(ReferenceModel.TinyLlama3);

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

[CollectionDefinition("server")]
public sealed class ServerCollection : ICollectionFixture<LlamaServer>;
