using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace LongCtx.Server;

/// <summary>
/// POST /tokenize and /detokenize as vLLM serves them: {"prompt": text, "add_special_tokens": true} or {"messages": [...],
/// "add_generation_prompt": true} to {"count", "max_model_len", "tokens", "token_strs"}; {"tokens": [...]} to {"prompt": text}.
/// </summary>
internal sealed class TokenizeEndpoint(ServedModel model, RequestReader reader)
{
    private readonly TokenText _text = new(model.Tokenizer);

    public async Task Tokenize(HttpContext ctx)
    {
        var o = await Body(ctx);
        reader.CheckModel(o);
        int[] tokens;
        if (o.Has("messages"))
            tokens = reader.ChatTokens(o, RequestGuard.KeyPartition(ctx), o.Bool("add_generation_prompt") ?? true);
        else
        {
            string text = o.String("prompt") ?? throw ApiException.BadRequest("'prompt' (a string) or 'messages' is required", "prompt");
            tokens = model.Tokenizer.Encode(text, addSpecialTokens: o.Bool("add_special_tokens") ?? true);
        }
        bool strings = o.Bool("return_token_strs") ?? false;
        await OpenAiServer.WriteJson(ctx, ResponseJson.Write(w =>
        {
            w.WriteNumber("count", tokens.Length);
            w.WriteNumber("max_model_len", reader.MaxModelLen);
            w.WriteStartArray("tokens");
            foreach (int t in tokens) w.WriteNumberValue(t);
            w.WriteEndArray();
            if (!strings) w.WriteNull("token_strs");
            else
            {
                w.WriteStartArray("token_strs");
                foreach (int t in tokens) w.WriteStringValue(_text.Display(t));
                w.WriteEndArray();
            }
        }));
    }

    public async Task Detokenize(HttpContext ctx)
    {
        var o = await Body(ctx);
        reader.CheckModel(o);
        int[] tokens = JsonFields.TokenIds(o.Field("tokens")) ?? (o.Field("tokens") is JsonArray { Count: 0 } ? []
            : throw ApiException.BadRequest("'tokens' must be an array of token ids", "tokens"));
        int vocab = model.Engine.Config.VocabSize;
        foreach (int t in tokens)
            if ((uint)t >= (uint)vocab) throw ApiException.BadRequest($"token id {t} is outside the vocabulary (size {vocab})", "tokens");
        await OpenAiServer.WriteJson(ctx, ResponseJson.Write(w => w.WriteString("prompt", model.Tokenizer.Decode(tokens, skipSpecialTokens: false))));
    }

    private static async Task<JsonObject> Body(HttpContext ctx)
    {
        if (await RequestBody.Read(ctx) is not JsonObject o) throw ApiException.BadRequest("the request body must be a JSON object");
        JsonUnicode.Check(o);
        return o;
    }
}
