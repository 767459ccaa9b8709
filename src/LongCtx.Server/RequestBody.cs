using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace LongCtx.Server;

/// <summary>
/// Reads a route's JSON body. What Kestrel refuses while the body is read (too large: 413; arriving too slowly: 408)
/// keeps its status; JSON that does not parse is a 400.
/// </summary>
internal static class RequestBody
{
    public static async Task<JsonNode?> Read(HttpContext ctx)
    {
        try { return await JsonNode.ParseAsync(ctx.Request.Body, cancellationToken: ctx.RequestAborted); }
        catch (JsonException e) { throw ApiException.BadRequest($"the body is not valid JSON: {e.Message}"); }
        catch (BadHttpRequestException e) { throw new ApiException(e.StatusCode, $"bad request body: {e.Message}"); }
    }
}
