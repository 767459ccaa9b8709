using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace LongCtx.Server;

/// <summary>
/// What a request must pass before any route runs, so that a web page the user visits cannot use the server: its Host
/// header names this server (an IP address, localhost, this machine's name, or one of --allowed-hosts: a page on a
/// rebound DNS name is refused); a browser's cross-origin request comes from one of --allowed-origins (none by default,
/// and preflights are answered only for those); a body is JSON (415 otherwise: a form or text/plain POST, which a page
/// may send without a preflight, never reaches a route); and with API keys, /v1/*, /tokenize and /detokenize need
/// "Authorization: Bearer KEY" (401). /health and /metrics stay open to probes.
/// </summary>
internal sealed class RequestGuard
{
    private readonly HashSet<string> _hosts;
    private readonly bool _anyHost, _anyOrigin;
    private readonly HashSet<string> _origins;
    private readonly byte[][] _keyHashes;

    public RequestGuard(ServerOptions options, string boundHost)
    {
        _anyHost = options.AllowedHosts.Contains("*");
        _hosts = new HashSet<string>(options.AllowedHosts.Append("localhost").Append(boundHost).Append(Dns.GetHostName()), StringComparer.OrdinalIgnoreCase);
        _anyOrigin = options.AllowedOrigins.Contains("*");
        _origins = new HashSet<string>(options.AllowedOrigins.Select(o => o.TrimEnd('/')), StringComparer.OrdinalIgnoreCase);
        _keyHashes = [.. options.ApiKeys.Select(Hash)];
    }

    /// <summary>The index of the key a request brought (which partitions its kept conversations); 0 without keys.</summary>
    public const string KeyItem = "longctx.key";

    /// <summary>The API key's part of a request's partition (<see cref="GenerationParams.Partition"/>).</summary>
    public static string KeyPartition(HttpContext ctx) => ctx.Items[KeyItem] is int key ? key.ToString(CultureInfo.InvariantCulture) : "";

    /// <summary>
    /// Checks the request; answers a CORS preflight itself (true: the response is complete). Throws the refusal.
    /// </summary>
    public bool Check(HttpContext ctx)
    {
        var request = ctx.Request;
        string host = request.Host.Host;
        if (!_anyHost && !IPAddress.TryParse(host.Trim('[', ']'), out _) && !_hosts.Contains(host))
            throw new ApiException(400, $"Host '{request.Host}' is not served here: start the server with --allowed-hosts {host} to accept it", code: "host_not_allowed");

        if (request.Headers.Origin is { Count: > 0 } origins && origins[0] is { } origin)
        {
            if (!_anyOrigin && !_origins.Contains(origin.TrimEnd('/')))
                throw new ApiException(403, $"requests from the web origin {origin} are refused: start the server with --allowed-origins {origin} to allow it", code: "origin_not_allowed");
            ctx.Response.Headers.AccessControlAllowOrigin = _anyOrigin ? "*" : origin;
            ctx.Response.Headers.Vary = "Origin";
            if (HttpMethods.IsOptions(request.Method) && request.Headers.AccessControlRequestMethod.Count > 0)
            {
                ctx.Response.Headers.AccessControlAllowMethods = "GET, POST, OPTIONS";
                ctx.Response.Headers.AccessControlAllowHeaders = "Authorization, Content-Type";
                ctx.Response.Headers.AccessControlMaxAge = "600";
                ctx.Response.StatusCode = 204;
                return true;
            }
        }

        ctx.Items[KeyItem] = 0;
        if (_keyHashes.Length > 0 && NeedsKey(request.Path)) ctx.Items[KeyItem] = KeyIndex(request);

        if (HasBody(request) && !IsJson(request.ContentType))
            throw new ApiException(415, $"the body must be JSON (Content-Type: application/json), not {(request.ContentType is { Length: > 0 } type ? $"'{type}'" : "untyped")}",
                code: "unsupported_media_type");
        return false;
    }

    private static bool NeedsKey(PathString path) =>
        path.StartsWithSegments("/v1") || path.StartsWithSegments("/tokenize") || path.StartsWithSegments("/detokenize");

    private int KeyIndex(HttpRequest request)
    {
        string header = request.Headers.Authorization.ToString();
        const string bearer = "Bearer ";
        if (!header.StartsWith(bearer, StringComparison.OrdinalIgnoreCase))
            throw new ApiException(401, "an API key is required: send 'Authorization: Bearer YOUR_KEY'", code: "invalid_api_key");
        var hash = Hash(header[bearer.Length..].Trim());
        // Every key is compared, in constant time, so the time taken tells nothing about which matched.
        int found = -1;
        for (int i = 0; i < _keyHashes.Length; i++)
            if (CryptographicOperations.FixedTimeEquals(hash, _keyHashes[i]) && found < 0) found = i;
        return found >= 0 ? found : throw new ApiException(401, "the API key is not valid for this server", code: "invalid_api_key");
    }

    private static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));

    private static bool HasBody(HttpRequest request) => request.ContentLength > 0 || (request.ContentLength is null && request.Headers.TransferEncoding.Count > 0);

    private static bool IsJson(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var type) && type.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase);
}
