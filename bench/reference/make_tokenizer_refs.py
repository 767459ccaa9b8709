#!/usr/bin/env python3
"""Reference tokenizations for the tokenizer tests (tests/LongCtx.Tests/Text/FamilyReferenceTests.cs), made with
Hugging Face `tokenizers` and `transformers` on the GPU machine (no internet needed).

For every family directory under --tokenizers (each holding tokenizer.json and tokenizer_config.json, as
scripts/fetch-tokenizers.sh lays them out in .cache/tokenizers/<family>/), writes --out/<family>.json with:
  cases          for each hard string: text, ids (encode, add_special_tokens=False), decoded (decode(ids)),
                 decoded_skip (skip_special_tokens=True), ids_special (tokenizers, add_special_tokens=True) and
                 transformers_ids (AutoTokenizer(text)["input_ids"], what vLLM feeds the model; null where transformers
                 cannot load the directory or encodes differently from tokenizer.json)
  corpus_ids     the tokenization (no special tokens) of the four-part corpus: "Part k.\\n<corpus>\\n" for k = 1..4
  no_whitespace  the 100,000-character string made of the corpus without its whitespace, repeated and cut: its id
                 count and its first and last 64 ids
  versions       of tokenizers and transformers

Run from the repository root:
  tar -xJf tokenizers.tar.xz          # if the tokenizers came as an archive: .cache/tokenizers/<family>/tokenizer*.json
  python3 bench/reference/make_tokenizer_refs.py [--tokenizers .cache/tokenizers] [--corpus tests/data/fixtures/corpus.txt]
                                                 [--out tests/data/tokenizers] [FAMILY ...]
"""
import argparse
import json
import os
import sys

import tokenizers
from tokenizers import Tokenizer

HARD = [
    "Hello world",
    " leading space",
    "trailing space ",
    "  two  spaces  ",
    "many      spaces and\t\ttabs\t \t mixed",
    "line\nbreak\r\nwindows\n\n\npara\r\r\n",
    "   \n  \n\t \r\n",
    "control\u0001\u0002\u0007\u001b[0m chars\u007f\u0085 end",
    "numbers 1234567 12 3.14159 -0.5e10 1,000,000 \u0663\u0664\u0665",
    "CamelCaseIdentifierName snake_case_name kebab-case-name",
    "na\u00efve caf\u00e9 Z\u00fcrich d\u00e9j\u00e0 vu cafe\u0301 (decomposed)",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u0440\u0443\u0441\u0441\u043a\u0438\u0439",
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u0639\u0628\u0631\u064a\u062a \u05e2\u05d1\u05e8\u05d9\u05ea mixed with English",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \u4e2d\u6587\u6587\u672c\uff0c\u4e16\u754c\u3002 \ud55c\uad6d\uc5b4",
    "\u0926\u0947\u0935\u0928\u093e\u0917\u0930\u0940 \u0939\u093f\u0928\u094d\u0926\u0940 \u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22",
    "emoji \U0001f6a2\U0001f30a\u2693\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 \U0001f44d\U0001f3fd \U0001f1fa\U0001f1f3",
    "\U0001d400\U0001d401\U0001d402 \U0002070e\U00020731 supplementary",
    "\u2581already\u2581has\u2581metaspace \u2581 \u2581\u2581",
    "a" * 300,
    "code: for (int i = 0; i < n; ++i) { sum += a[i]; }\n\tif (x != y) return -1;",
    "def f(x):\n    return {'k': [1, 2, 3]}  # comment\n",
    "https://example.com/path/to/page?q=1&r=two#frag and user@example.org",
    "I'm you're we'll they'd IT'S don't",
    "<|begin_of_text|>special<|eot_id|> and <s>sentencepiece</s> and <bos><eos>",
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "<start_of_turn>user\nhi<end_of_turn>\n<|start|>assistant<|channel|>final<|message|>ok<|end|>",
    "<\uff5cbegin\u2581of\u2581sentence\uff5c>x<\uff5cUser\uff5c>y<\uff5cAssistant\uff5c>",
    "  <s>  </s>  <unk>  ",
    "\u00a0nbsp\u2003em\u3000ideographic\u200bzero-width",
    "",
    " ",
    "\n",
    "''",
    "--- *** ___ ... !!! ???",
    "x" + "\u0301" * 20,
]


def corpus_text(corpus):
    return "".join(f"Part {k}.\n{corpus}\n" for k in range(1, 5))


def no_whitespace(corpus, length=100_000):
    base = "".join(corpus.split())
    return (base * (length // len(base) + 1))[:length]


def transformers_ids(directory, texts, plain):
    """AutoTokenizer's ids with special tokens, or None for every text where transformers cannot load the directory
    or its tokenizer class rebuilds a pipeline that encodes differently from tokenizer.json (then the prompt's
    special tokens are left to the C# tests' own expectations)."""
    try:
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(directory)
    except Exception as e:
        print(f"  transformers could not load {directory}: {e}", file=sys.stderr)
        return [None] * len(texts)
    if any(tok(t, add_special_tokens=False)["input_ids"] != ids for t, ids in zip(texts, plain)):
        print(f"  transformers' {type(tok).__name__} encodes differently from tokenizer.json in {directory}: transformers_ids left out", file=sys.stderr)
        return [None] * len(texts)
    return [tok(t)["input_ids"] for t in texts]


def reference(directory, corpus):
    tok = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
    cases = []
    plain = [tok.encode(text, add_special_tokens=False).ids for text in HARD]
    for text, ids, with_special in zip(HARD, plain, transformers_ids(directory, HARD, plain)):
        cases.append({
            "text": text,
            "ids": ids,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skip": tok.decode(ids, skip_special_tokens=True),
            "ids_special": tok.encode(text, add_special_tokens=True).ids,
            "transformers_ids": with_special,
        })
    nows = tok.encode(no_whitespace(corpus), add_special_tokens=False).ids
    try:
        import transformers
        transformers_version = transformers.__version__
    except ImportError:
        transformers_version = None
    return {
        "versions": {"tokenizers": tokenizers.__version__, "transformers": transformers_version},
        "cases": cases,
        "corpus_ids": tok.encode(corpus_text(corpus), add_special_tokens=False).ids,
        "no_whitespace": {"length": 100_000, "count": len(nows), "first": nows[:64], "last": nows[-64:]},
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokenizers", default=".cache/tokenizers")
    p.add_argument("--corpus", default="tests/data/fixtures/corpus.txt")
    p.add_argument("--out", default="tests/data/tokenizers")
    p.add_argument("families", nargs="*")
    a = p.parse_args()
    with open(a.corpus, encoding="utf-8", newline="") as f:  # as the C# tests read it: line ends untouched
        corpus = f.read()
    families = a.families or sorted(d for d in os.listdir(a.tokenizers) if os.path.isfile(os.path.join(a.tokenizers, d, "tokenizer.json")))
    if not families:
        sys.exit(f"no <family>/tokenizer.json under {a.tokenizers}")
    os.makedirs(a.out, exist_ok=True)
    for family in families:
        ref = {"family": family, **reference(os.path.join(a.tokenizers, family), corpus)}
        path = os.path.join(a.out, f"{family}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(ref, f, ensure_ascii=True, indent=None, separators=(",", ":"))
            f.write("\n")
        print(f"{path}: {len(ref['cases'])} cases, {len(ref['corpus_ids'])} corpus ids, {ref['no_whitespace']['count']} ids for 100K chars without whitespace")


if __name__ == "__main__":
    main()
