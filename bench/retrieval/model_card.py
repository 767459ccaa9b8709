"""Writes the README.md of a retrieval model directory from what train.py (train_results.json) and evaluate.py
(eval_results.json) left in it; without them, the README of the directory before training (weights pending).
Standard library only.

  python3 bench/retrieval/model_card.py --model DIR [--note "which candidate was kept, and why"]
"""
import argparse
import json
import os

import task

ABOUT = """# retrieval-kv: a small retrieval model trained on a synthetic task

**This is not a language model.** It is a 4-layer Llama (hidden 256, 4 query and 2 KV heads of 128 dimensions, RoPE
base 10^7, {params} parameters, 10 MB in bf16) trained from scratch, in minutes on one GPU, on one synthetic task
(`bench/retrieval/task.py`): a document of random filler tokens holds key-value records at random places, and a
question at its end asks for the value of one key:

```
<s> f312 f7 ... K k417 v23 f88 ... K k9 v301 ... f41 Q k417   ->   v23
```

The answer is the token after the key's one appearance in the document, wherever that is: thousands of tokens back,
and with context parallelism in another rank's part of the document. That is the job long-context inference exists
for, in a model small enough to run on a laptop's CPU: `scripts/demo.sh` asks it about documents of 4K and 8K tokens,
with dense attention on one rank and with the document spread over 4 context-parallel ranks.

Its vocabulary has {vocab:,} tokens: `<s>`, `</s>`, `<unk>`, `Q`, `K`, filler `f0`-`f495`, keys `k0`-`k1023`,
values `v0`-`v511`. `tokenizer.json` is a Hugging Face WordLevel tokenizer with a Metaspace pre-tokenizer and decoder
(`bench/retrieval/vocab.py`), so the text `K k417 v23` is three tokens and prompts and answers print readably; every
encoded text starts with `<s>`, as every training document did. `generation_config.json` asks for one greedy token:
the model was trained to answer, not to go on.
"""

PENDING = """
## Training

Not trained yet: `model.safetensors` comes from `bench/retrieval/gpu-train.sh` on a GPU machine, which also fills in
this README (command, steps, seed, minutes, accuracy). Until then `--load-format dummy` runs this configuration with
random weights: the plumbing is real, the answers are noise.
"""

USE = """
## Use it

```
scripts/demo.sh                                           # 4 documents of 4K and 8K tokens, dense on 1 rank, pass-kv, pass-q and apb on 4
longctx make-retrieval-prompts --out p.jsonl --contexts 16384,65536 --per-context 32    # = bench/retrieval/prompts.py
longctx eval-retrieval --model models/retrieval-kv --prompts p.jsonl --strategies dense,pass-kv,pass-q,apb --ranks 4 --example
longctx generate --model models/retrieval-kv --prompt "f3 K k417 v23 f9 f1 K k9 v301 f4 Q k417" --max-new-tokens 1 --ranks 2
longctx serve --model models/retrieval-kv --ranks 4      # POST /v1/completions {{"prompt": "... Q k417", "max_tokens": 1, "temperature": 0}}
```

## A real model instead

The same commands take any Hugging Face Llama, Mistral or Qwen2 directory (config.json, safetensors, tokenizer.json):

```
longctx generate --model /models/Llama-3.1-8B-Instruct --prompt-file book.txt --max-new-tokens 64 --ranks 4 --strategy auto
longctx serve --model /models/Llama-3.1-8B-Instruct --ranks 4 --strategy auto --port 8000
longctx eval-retrieval --model /models/Llama-3.1-8B-Instruct --prompts mine.jsonl --strategies dense,pass-kv,apb --ranks 4 --device cuda
```

`eval-retrieval` reads one JSON object a line: `{{"ids": [...], "answer": [...], "query_tokens": N}}` in that model's
token ids (`longctx tokenize --model DIR --text-file doc.txt --json` gives the ids of a text); the prompts
`make-retrieval-prompts` writes are in this model's vocabulary and mean nothing to another model.
"""


def k(tokens):
    return f"{tokens // 1024}K"


def trained(t, note):
    minutes = t["train_seconds"] / 60
    s = f"""
## Training

```
{t["command"]}
```

{t["steps"]:,} steps in {minutes:.1f} minutes on one {t["device"]} (PyTorch {t["torch"]}), seed {t["seed"]}, AdamW at
learning rate {t["lr"]:g}, {t["layers"]} layers. Loss on the answer tokens only, on a curriculum from 64-token
documents to 16,384 (`bench/retrieval/train.py` says how; last stage reached: {t["last_stage_tokens"]:,} tokens), half
the steps from 2K on with positions skipped PoSE-style so that 16K-token sequences teach the distances of 64K.
train.py's own check ({t["questions_per_length"]} questions per length, contiguous positions): """
    s += ", ".join(f"{100 * v:.1f}% at {k(int(c))}" for c, v in t["accuracy"].items()) + "."
    e = t["export_check"]
    s += (f" transformers' own forward of the saved weights agrees with the training forward: answer logits relative error "
          f"{e['answer_logits_relative_error']:.1e}, argmax equal at {100 * e['argmax_agrees']:.0f}%.")
    if note:
        s += f" {note}"
    return s + "\n"


def evaluated(e):
    a = e["accuracy"]
    contexts = list(a["contexts"])
    s = f"""
## Accuracy on prompts it never saw

Greedy one-token answers to the prompts of `bench/retrieval/prompts.py` (seed {a["seed"]}; training draws its own
documents), {a["per_context"]} per context, dense attention through the training forward in PyTorch (bf16 autocast) on
one {e["device"]}:

| context | {" | ".join(k(int(c)) for c in contexts)} |
|---|{"---|" * len(contexts)}
| accuracy | {" | ".join(f"{a['contexts'][c]['accuracy']:.1f}%" for c in contexts)} |
"""
    rows = e.get("longctx", {}).get("results")
    if rows:
        strategies = [("dense", 1), ("pass-kv", 4), ("pass-q", 4), ("apb", 4)]
        s += f"""
LongCtx on the same GPU (`longctx eval-retrieval --device cuda`, bf16) on {e["longctx"]["per_context"]} prompts per context
(prompts.py `--per-context {e["longctx"]["per_context"]} --seed {e["longctx"]["seed"]}`), the 4 ranks sharing the GPU;
accuracy, and in brackets the answers equal to dense's:

| context | {" | ".join(f"{n} ({r} rank{'s' if r > 1 else ''})" for n, r in strategies)} |
|---|{"---|" * len(strategies)}
"""
        for c in sorted({r["context"] for r in rows}):
            cells = []
            for name, ranks in strategies:
                r = next((r for r in rows if r["context"] == c and r["strategy"] == name and r["ranks"] == ranks), None)
                cells.append("-" if r is None else f"{r['accuracy']:.1f}%" + ("" if name == "dense" else f" ({r['same_as_dense']}/{r['total']})"))
            s += f"| {k(c)} | {' | '.join(cells)} |\n"
    elif "longctx" in e:
        s += f"\n(LongCtx's GPU evaluation did not run: {e['longctx'].get('error', 'no results')}.)\n"
    d = e["demo"]
    s += f"""
The demo's prompts (`scripts/demo.sh`: {d["per_context"]} each of {" and ".join(f"{c:,}" for c in d["contexts"])} tokens,
seed {d["seed"]}): dense answers {d["correct"]} of {d["total"]} right in PyTorch (bf16); `scripts/demo.sh --quick` takes
the first {d["per_context"]}. LongCtx's CPU backend computes in float32, so an answer whose two best logits are nearly
equal can come out otherwise there.
"""
    return s


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--note", default="", help="a sentence for the training section (e.g. which candidate was kept)")
    args = p.parse_args()

    def load(name):
        path = os.path.join(args.model, name)
        return json.load(open(path)) if os.path.exists(path) else None

    t, e = load("train_results.json"), load("eval_results.json")
    params = f"{t['parameters'] / 1e6:.1f}M" if t else "about 5M"
    text = ABOUT.format(params=params, vocab=task.VOCAB)
    text += trained(t, args.note) if t else PENDING
    if e:
        text += evaluated(e)
    text += USE.format()
    with open(os.path.join(args.model, "README.md"), "w") as f:
        f.write(text)
    print(f"wrote {args.model}/README.md ({'trained' if t else 'pending'})")


if __name__ == "__main__":
    main()
