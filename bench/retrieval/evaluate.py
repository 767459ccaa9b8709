"""Evaluates a trained retrieval model directory on prompts it never saw (prompts.py's; training draws its own) and
writes DIR/eval_results.json, which model_card.py turns into the directory's README and the C# tests read:

  accuracy   greedy answers, dense, PyTorch (bf16 autocast, SDPA flash: train.py's forward), at 4K-64K
  demo       the prompts scripts/demo.sh makes (4096,8192 x 2, seed 1234): each answer; --quick takes the first two
  check      1024 x 8 (seed 1234) through transformers' own forward in float32: the count the CPU engine must match
             (tests/LongCtx.Tests/Retrieval/ShippedModelTests.cs)
  tokenizer  tokenizer.json through Hugging Face tokenizers and AutoTokenizer: ids and decoded text of a sample
  longctx    a second run, with --longctx BIN, adds to the file: `eval-retrieval --device cuda` on the accuracy prompts
             (fewer per context), dense on 1 rank and pass-kv, pass-q, apb on 4 ranks sharing the GPU

  python3 bench/retrieval/evaluate.py --model DIR [--per-context 256]
  python3 bench/retrieval/evaluate.py --model DIR --longctx .publish/linux-x64/longctx [--longctx-per-context 64]
"""
import argparse
import json
import os
import random
import subprocess
import tempfile
import time

import torch
from transformers import LlamaForCausalLM

import prompts
import task
import train

ACCURACY_CONTEXTS = [4096, 8192, 16384, 32768, 65536]
ACCURACY_SEED = 4321
DEMO = {"contexts": [4096, 8192], "per_context": 2, "seed": 1234}
CHECK = {"contexts": [1024], "per_context": 8, "seed": 1234}


def prompt_set(contexts, per_context, seed):
    """prompts.py's prompts for these arguments, in the order it writes them."""
    rng = random.Random(seed)
    return [prompts.prompt(rng, c) for c in contexts for _ in range(per_context)]


@torch.no_grad()
def answer_bf16(model, p, device):
    """The greedy one-token answer through train.py's forward (bf16 autocast, flash attention), as trained."""
    ids = torch.tensor([p["ids"]], device=device)
    n = ids.shape[1]
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logits = train.answer_logits(model, ids, torch.arange(n, device=device)[None], torch.tensor([[n - 1]], device=device))
    return int(logits[0, -1].argmax())


@torch.no_grad()
def answer_fp32(model, p, device):
    """The greedy one-token answer through transformers' own forward in float32."""
    out = model(input_ids=torch.tensor([p["ids"]], device=device), logits_to_keep=1)
    return int(out.logits[0, -1].float().argmax())


def score(set_, answers):
    right = sum(a == p["answer"][0] for p, a in zip(set_, answers))
    return {"correct": right, "total": len(set_), "accuracy": round(100.0 * right / len(set_), 2)}


def check_tokenizer(model_dir):
    """The shipped tokenizer.json read by the reference implementation: the ids of a sample text and back."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer
    text = "K k417 v23 f5 Q k417"
    expected = [task.BOS, task.K, task.KEYS[417], task.VALUES[23], task.FILLER[5], task.Q, task.KEYS[417]]
    try:
        t = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        ids = t.encode(text).ids
        decoded = t.decode(ids, skip_special_tokens=True)
        auto = AutoTokenizer.from_pretrained(model_dir)(text)["input_ids"]
    except Exception as e:  # reported in the results, not fatal: the weights are what the run is for
        return {"text": text, "error": f"{type(e).__name__}: {e}", "pass": False}
    return {"text": text, "expected": expected, "ids": ids, "auto_tokenizer_ids": list(auto), "decoded": decoded,
            "pass": ids == expected and list(auto) == expected and decoded == text}


def run_longctx(binary, model_dir, per_context):
    """eval-retrieval on the GPU over the accuracy contexts; its JSON rows."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "prompts.jsonl")
        with open(path, "w") as f:
            for p in prompt_set(ACCURACY_CONTEXTS, per_context, ACCURACY_SEED):
                f.write(json.dumps(p, separators=(",", ":")) + "\n")
        out = subprocess.run([binary, "eval-retrieval", "--model", model_dir, "--prompts", path, "--strategies", "dense,pass-kv,pass-q,apb",
                              "--ranks", "4", "--device", "cuda", "--json"], capture_output=True, text=True)
        print(out.stderr, end="")
        if out.returncode != 0:
            return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
        return {"per_context": per_context, "seed": ACCURACY_SEED, "results": json.loads(out.stdout)["results"]}


def write(path, results):
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    print(f"wrote {path}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="the model directory train.py wrote")
    p.add_argument("--per-context", type=int, default=256, help="accuracy prompts per context length")
    p.add_argument("--longctx", help="a published longctx binary: add its eval-retrieval on the GPU to DIR/eval_results.json")
    p.add_argument("--longctx-per-context", type=int, default=64)
    args = p.parse_args()
    path = os.path.join(args.model, "eval_results.json")
    if args.longctx:
        with open(path) as f:
            results = json.load(f)
        results["longctx"] = run_longctx(args.longctx, args.model, args.longctx_per_context)
        write(path, results)
        return
    device = torch.device("cuda")
    start = time.time()
    model = LlamaForCausalLM.from_pretrained(args.model, dtype=torch.float32).to(device).eval()
    results = {"device": torch.cuda.get_device_name(), "accuracy": {"seed": ACCURACY_SEED, "per_context": args.per_context, "contexts": {}}}
    everything = prompt_set(ACCURACY_CONTEXTS, args.per_context, ACCURACY_SEED)
    for context in ACCURACY_CONTEXTS:
        set_ = [q for q in everything if q["context"] == context]
        s = score(set_, [answer_bf16(model, q, device) for q in set_])
        results["accuracy"]["contexts"][str(context)] = s
        print(f"dense at {context} tokens: {s['correct']}/{s['total']} ({s['accuracy']}%) [{time.time() - start:.0f} s]", flush=True)
    demo = prompt_set(**DEMO)
    answers = [answer_bf16(model, q, device) for q in demo]
    results["demo"] = {**DEMO, **score(demo, answers), "answers": answers, "expected": [q["answer"][0] for q in demo]}
    print(f"demo prompts: {results['demo']['correct']}/{len(demo)}", flush=True)
    check = prompt_set(**CHECK)
    answers = [answer_fp32(model, q, device) for q in check]
    results["check"] = {**CHECK, **score(check, answers), "answers": answers, "expected": [q["answer"][0] for q in check]}
    print(f"check prompts (float32, transformers): {results['check']['correct']}/{len(check)}", flush=True)
    results["tokenizer"] = check_tokenizer(args.model)
    print(f"tokenizer check: {results['tokenizer']}", flush=True)
    write(path, results)
    print(f"[{time.time() - start:.0f} s]")


if __name__ == "__main__":
    main()
