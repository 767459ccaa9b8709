using System.CommandLine;

namespace LongCtx.Cli;

/// <summary>--chat-template FILE: a Jinja chat template that replaces the model's own (tokenizer_config.json's chat_template).</summary>
internal static class ChatTemplateOption
{
    public static Option<string?> Create() => new("--chat-template")
    {
        Description = "Jinja chat template file to render chat with instead of the model's own (tokenizer_config.json's chat_template)",
    };
}
