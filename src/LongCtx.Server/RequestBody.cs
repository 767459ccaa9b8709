using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace LongCtx.Server;

/// <summary>
/// Reads a route's JSON body. What Kestrel refuses while the body is read (too large: 413; arriving too slowly: 408)
/// keeps its status; JSON that does not parse, or names a field twice, is a 400.
/// </summary>
internal static class RequestBody
{
    // A field named twice is refused here: JsonObject would throw on its first read, deep in a route, as a 500.
    private static readonly JsonDocumentOptions Strict = new() { AllowDuplicateProperties = false };

    public static async Task<JsonNode?> Read(HttpContext ctx)
    {
        try { return await JsonNode.ParseAsync(ctx.Request.Body, documentOptions: Strict, cancellationToken: ctx.RequestAborted); }
        catch (JsonException e) { throw ApiException.BadRequest($"the body is not valid JSON: {e.Message}"); }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            long? limit = ctx.Features.Get<IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize;
            throw new ApiException(413, $"the body is larger than the {limit} bytes this server takes (room for --max-prompt-tokens as token ids): shorten the prompt");
        }
        catch (BadHttpRequestException e) { throw new ApiException(e.StatusCode, $"bad request body: {e.Message}"); }
    }
}
