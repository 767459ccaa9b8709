using System.Text.Json.Nodes;
using LongCtx.Sampling;

namespace LongCtx.Server;

/// <summary>
/// A request's logprobs fields: completions' "logprobs": N, chat's "logprobs": true with "top_logprobs": N,
/// and what echo with logprobs (the prompt's logprobs) can be asked for.
/// </summary>
internal static class LogprobsRequest
{
    /// <summary>Completions: the N most likely tokens per position (0 to 20); null or absent: no logprobs.</summary>
    public static int? Completion(JsonObject o) => Top(o, "logprobs");

    /// <summary>Chat: "logprobs": true, with "top_logprobs" (0 to 20, default 0) most likely tokens per position.</summary>
    public static int? Chat(JsonObject o)
    {
        bool on = o.Bool("logprobs") ?? false;
        int? top = Top(o, "top_logprobs");
        if (top is not null && !on) throw ApiException.BadRequest("'top_logprobs' needs \"logprobs\": true: add it or leave out top_logprobs", "top_logprobs");
        return on ? top ?? 0 : null;
    }

    /// <summary>The prompt's logprobs need the logits of every prompt position: an exact prefill.</summary>
    public static void CheckPromptLogprobs(bool approximate)
    {
        if (approximate)
            throw ApiException.BadRequest("'echo' with 'logprobs' needs the logits of every prompt position, which approximate prefills (star, apb) do not compute: use an exact strategy or leave out echo", "echo");
    }

    private static int? Top(JsonObject o, string name)
    {
        long? n = o.Integer(name);
        if (n is < 0 or > Logprobs.MaxTop) throw ApiException.BadRequest($"'{name}' must be 0 to {Logprobs.MaxTop}, got {n}", name);
        return (int?)n;
    }
}
