"""The names of task.py's 2,048 token ids, and the Hugging Face tokenizer that reads and writes them: a WordLevel
model behind a Metaspace pre-tokenizer, so the text "K k417 v23" is the ids of K, key 417 and value 23, and those
ids decode to that text. Standard library only.

  ids          text                 ids           text
  0, 1         <s>, </s>            16..511       f0..f495     filler
  2, 4         Q, K                 512..1535     k0..k1023    keys
  3            <unk>                1536..2047    v0..v511     values
  5..15        <unused5>..<unused15>

Every token is "▁" + its text, as Metaspace splits text into words. BOS is prepended to every encoded text
(TemplateProcessing): every training document starts with it.

  python3 bench/retrieval/vocab.py --out models/retrieval-kv     (writes tokenizer.json and tokenizer_config.json)
"""
import argparse
import json
import os

import task

MARK = "\u2581"  # Metaspace's word mark "▁"
SPECIAL = {task.BOS: "<s>", task.EOS: "</s>", task.UNK: "<unk>"}


def name(i):
    """The text of token id i."""
    if i in SPECIAL:
        return SPECIAL[i]
    for prefix, ids in (("f", task.FILLER), ("k", task.KEYS), ("v", task.VALUES)):
        if i in ids:
            return f"{prefix}{i - ids.start}"
    return {task.Q: "Q", task.K: "K"}.get(i, f"<unused{i}>")


def tokenizer_json():
    metaspace = {"replacement": MARK, "prepend_scheme": "always", "split": True}
    bos = MARK + SPECIAL[task.BOS]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": i, "content": MARK + s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
                          "special": True} for i, s in sorted(SPECIAL.items())],
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", **metaspace},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [task.BOS], "tokens": [bos]}},
        },
        "decoder": {"type": "Metaspace", **metaspace},
        "model": {"type": "WordLevel", "vocab": {MARK + name(i): i for i in range(task.VOCAB)}, "unk_token": MARK + SPECIAL[task.UNK]},
    }


def tokenizer_config():
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": MARK + SPECIAL[task.BOS],
        "eos_token": MARK + SPECIAL[task.EOS],
        "unk_token": MARK + SPECIAL[task.UNK],
        "model_max_length": 131072,
        "clean_up_tokenization_spaces": False,
    }


def write(out):
    """Writes tokenizer.json and tokenizer_config.json into the directory `out`."""
    for file, content in (("tokenizer.json", tokenizer_json()), ("tokenizer_config.json", tokenizer_config())):
        with open(os.path.join(out, file), "w", encoding="utf-8") as f:
            json.dump(content, f, ensure_ascii=False, indent=2)
            f.write("\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="model directory to write tokenizer.json and tokenizer_config.json into")
    args = p.parse_args()
    write(args.out)
    print(f"wrote {args.out}/tokenizer.json and tokenizer_config.json ({task.VOCAB} tokens)")


if __name__ == "__main__":
    main()
