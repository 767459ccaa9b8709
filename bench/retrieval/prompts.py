"""Writes the retrieval test prompts `longctx eval-retrieval --prompts FILE` reads: one JSON object a line
with the prompt ids (a document of task.py ending in one question), the answer ids, query_tokens (the
question's length: Star/APB's query), context (the prompt's length), task ("kv") and depth (where the
needed record starts, as a fraction of the document). Standard library only.

  python3 bench/retrieval/prompts.py --out /tmp/retrieval-prompts.jsonl [--contexts 16384,32768,65536] [--per-context 24]
"""
import argparse
import json
import random

import task


def prompt(rng, context):
    ids, records = task.document(rng, context - task.QUERY_LEN)
    key, value, start = rng.choice(records)
    return {"ids": ids + task.question(key), "answer": [value], "query_tokens": task.QUERY_LEN, "context": context,
            "task": "kv", "depth": round(start / len(ids), 3)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--contexts", default="16384,32768,65536", help="prompt lengths in tokens, comma separated")
    p.add_argument("--per-context", type=int, default=24, help="prompts per context length")
    p.add_argument("--seed", type=int, default=1234, help="differs from training's, so no test document was seen")
    args = p.parse_args()
    rng = random.Random(args.seed)
    n = 0
    with open(args.out, "w") as f:
        for context in (int(c) for c in args.contexts.split(",")):
            for _ in range(args.per_context):
                f.write(json.dumps(prompt(rng, context), separators=(",", ":")) + "\n")
                n += 1
    print(f"wrote {n} prompts to {args.out}")


if __name__ == "__main__":
    main()
