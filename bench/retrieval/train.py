"""Trains a small Llama on the retrieval task of task.py and saves it as a Hugging Face directory that
`longctx --model DIR` loads: config.json, model.safetensors in bf16, generation_config.json (greedy, one new token:
the answer), tokenizer.json and tokenizer_config.json (vocab.py), and train_results.json (what model_card.py puts in
the directory's README: the command, seed, steps, minutes, accuracy).

One GPU, fp32 weights with bf16 autocast, attention through SDPA with is_causal (flash; no T x T mask).
Curriculum: lengths 128 -> 16K, each a stage the model moves past at 90% answer accuracy; steps mix the
current length with shorter ones. The short stages pack records densely (one per 8 tokens at 128, thinning
to the test prompts' one per 128 from 2K on): more answers per token, so the matching circuit forms
sooner. Batches are built on the GPU: the rounds of 2026-11-23 built them in Python, got ~2,000 steps at
128 tokens in a quarter of their time and never left the plateau near chance (docs/PERFORMANCE.md).
Half the steps from 2K on skip positions PoSE-style (Zhu et al. 2023): three jumps in the document put
its tokens up to 72K apart, so the 16K-token sequences teach the positions and distances of the 16K-64K
test contexts. Stops when the 16K accuracy passes 98% or the time is up (a stage lasts at most a
quarter of it), then prints the accuracy at 16K, 32K and 64K with contiguous positions, saves, and
checks that transformers' own forward pass of the saved directory gives the logits this script trained.

  python3 bench/retrieval/train.py --out /tmp/retrieval-model            (about 4 minutes on one H200)
  python3 bench/retrieval/train.py --out /tmp/retrieval-smoke --smoke    (seconds: the plumbing only)
"""
import argparse
import collections
import json
import os
import random
import sys
import time

import torch
import torch.nn.functional as F
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

import task
import vocab

# (length, batch, records, questions): 32K tokens a step. The first stages have few records: the fewer the
# distractors, the sooner the matching circuit forms (with 16 records from the start, the rounds of
# 2026-11-23 sat near 20% for 10,000 steps). From 2K on one record per 128 tokens, as in the test prompts.
STAGES = [(64, 512, 4, 4), (128, 256, 8, 8), (256, 128, 16, 16), (512, 64, 16, 16), (1024, 32, 16, 16), (2048, 16, 16, 16),
          (4096, 8, 32, 16), (8192, 4, 64, 16), (16384, 2, 128, 16)]
SMOKE_STAGES = [(64, 8, 4, 4), (256, 4, 16, 16)]
N_QUESTIONS = 16  # in the evaluation; at most task.MIN_RECORDS, since questions are about distinct records
POSE_SPAN = 72 * 1024  # the largest position a skipped sequence reaches: past the 64K test contexts
ADVANCE, DONE = 0.90, 0.98


def test_records(length):
    """Records in a test prompt of `length` tokens (task.document's count)."""
    return max(task.MIN_RECORDS, (length - N_QUESTIONS * task.QA_LEN) // task.TOKENS_PER_RECORD)


def model_config(layers):
    # Heads of 128 dims with RoPE base 1e7: about ten rotation frequencies fast enough to single out the
    # previous token, and about twenty slow enough (under 1e-5 rad a token) to match a key's content 64K
    # tokens back. Heads of 32 dims at base 1e6 had two of the first kind and two of the second.
    return LlamaConfig(vocab_size=task.VOCAB, hidden_size=256, intermediate_size=768, num_hidden_layers=layers,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=128, max_position_embeddings=131072,
                       rope_theta=1e7, rms_norm_eps=1e-5, tie_word_embeddings=False,
                       bos_token_id=task.BOS, eos_token_id=task.EOS)


def hidden_states(model, ids, positions):
    """Final-norm hidden states [b, n, H] through transformers' own modules with our attention call:
    transformers would read a position skip as the start of a new packed sequence and mask across it."""
    m, c = model.model, model.config
    b, n = ids.shape
    nh, nkv, d = c.num_attention_heads, c.num_key_value_heads, c.head_dim
    x = m.embed_tokens(ids)
    cos, sin = m.rotary_emb(x, positions)
    for layer in m.layers:
        a = layer.self_attn
        h = layer.input_layernorm(x)
        q = a.q_proj(h).view(b, n, nh, d).transpose(1, 2)
        k = a.k_proj(h).view(b, n, nkv, d).transpose(1, 2)
        v = a.v_proj(h).view(b, n, nkv, d).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        q, k, v = (t.to(torch.bfloat16) for t in (q, k, v))
        k, v = k.repeat_interleave(nh // nkv, 1), v.repeat_interleave(nh // nkv, 1)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + a.o_proj(o.transpose(1, 2).reshape(b, n, nh * d))
        x = x + layer.mlp(layer.post_attention_layernorm(x))
    return m.norm(x)


def answer_logits(model, ids, positions, targets):
    """Logits [b, t, V] (fp32) at the positions whose next token is an answer token."""
    h = hidden_states(model, ids, positions)
    rows = h.gather(1, targets[..., None].expand(-1, -1, h.shape[-1]))
    return model.lm_head(rows).float()


def skipped_positions(rng, length, document):
    """0..length-1 plus three growing offsets from random cut points in the document on (PoSE)."""
    offsets = torch.zeros(length, dtype=torch.long)
    extra = rng.randint(0, POSE_SPAN - length)
    for cut, jump in zip(sorted(rng.randint(1, document - 1) for _ in range(3)), sorted(rng.randint(0, extra) for _ in range(3))):
        offsets[cut:] = jump
    return torch.arange(length) + offsets


def make_batch(gen, rng, length, size, n, questions, skip, device):
    """`size` sequences of `length` tokens built on the GPU (building them in Python held a step to ~27 a
    second): a document in task.py's layout with n records, one at a random place in each of its equal
    segments (so records never overlap), then `questions` questions about distinct records. Returns the
    ids, the positions (PoSE-skipped when `skip`) and the positions whose next token is an answer."""
    doc = length - questions * task.QA_LEN
    seg = (doc - 1) // n
    if seg < task.RECORD_LEN:
        raise ValueError(f"a document of {doc} tokens cannot hold {n} records")
    ids = torch.randint(task.FILLER.start, task.FILLER.stop, (size, length), generator=gen, device=device)
    ids[:, 0] = task.BOS
    keys = torch.rand(size, len(task.KEYS), generator=gen, device=device).argsort(1)[:, :n] + task.KEYS.start
    values = torch.randint(task.VALUES.start, task.VALUES.stop, (size, n), generator=gen, device=device)
    offsets = torch.randint(0, seg - task.RECORD_LEN + 1, (size, n), generator=gen, device=device)
    starts = 1 + seg * torch.arange(n, device=device) + offsets
    rows = torch.arange(size, device=device)[:, None]
    ids[rows, starts] = task.K
    ids[rows, starts + 1] = keys
    ids[rows, starts + 2] = values
    asked = torch.rand(size, n, generator=gen, device=device).argsort(1)[:, :questions]
    at = doc + task.QA_LEN * torch.arange(questions, device=device)
    ids[:, at] = task.Q
    ids[:, at + 1] = keys.gather(1, asked)
    ids[:, at + 2] = values.gather(1, asked)
    targets = (at + 1).expand(size, -1).contiguous()  # the key's position predicts the value
    if not skip:
        return ids, torch.arange(length, device=device).expand(size, -1), targets
    return ids, torch.stack([skipped_positions(rng, length, doc) for _ in range(size)]).to(device), targets


def question_accuracy(logits, ids, targets):
    """Share of questions whose answer is the argmax (teacher-forced, which for a one-token answer is greedy)."""
    return (logits.argmax(-1) == ids.gather(1, targets + 1)).float().mean().item()


@torch.no_grad()
def evaluate(model, gen, rng, length, sequences, device):
    accuracy = 0.0
    for _ in range(sequences):
        ids, positions, targets = make_batch(gen, rng, length, 1, test_records(length), N_QUESTIONS, False, device)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            accuracy += question_accuracy(answer_logits(model, ids, positions, targets), ids, targets)
    return accuracy / sequences


def train(model, args, device):
    stages = SMOKE_STAGES if args.smoke else STAGES
    rng = random.Random(args.seed)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01, fused=True)
    start = time.time()
    stage, stage_start, step, last_log = 0, start, 0, 0.0
    recent = collections.deque(maxlen=20)  # accuracies of the latest steps at the current stage
    while True:
        elapsed = time.time() - start
        if elapsed > args.minutes * 60 or (args.smoke and step >= 30):
            print(f"time is up after {step} steps at {stages[stage][0]} tokens")
            return step, stages[stage][0], elapsed
        # Half the steps at the current length, the rest at a shorter one, so no length is forgotten.
        current = rng.random() < 0.5 or stage == 0
        length, size, records, questions = stages[stage if current else rng.randrange(stage)]
        skip = rng.random() < 0.5 and (length >= 2048 or args.smoke)
        ids, positions, targets = make_batch(gen, rng, length, size, records, questions, skip, device)
        for g in opt.param_groups:
            g["lr"] = args.lr * min(1.0, (step + 1) / 100)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = answer_logits(model, ids, positions, targets)
        loss = F.cross_entropy(logits.flatten(0, 1), ids.gather(1, targets + 1).flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if current:
            recent.append(question_accuracy(logits.detach(), ids, targets))
        mean = sum(recent) / max(1, len(recent))
        if elapsed - last_log > 10 or step == 1:
            last_log = elapsed
            print(f"[{elapsed:6.1f} s] step {step:5d} length {stages[stage][0]:5d} loss {loss.item():.3f} accuracy {mean:.3f}", flush=True)
        full = len(recent) == recent.maxlen
        if stage == len(stages) - 1 and full and mean > DONE:
            print(f"[{elapsed:6.1f} s] accuracy {mean:.3f} at {stages[stage][0]} tokens: done after {step} steps")
            return step, stages[stage][0], elapsed
        # Move on at 90%, or after a quarter of the time so the long lengths are always trained (the first
        # stage needs the longest: accuracy sits at chance until the induction circuit forms).
        if stage < len(stages) - 1 and ((full and mean > ADVANCE) or time.time() - stage_start > args.minutes * 15):
            stage, stage_start = stage + 1, time.time()
            recent.clear()
            print(f"[{elapsed:6.1f} s] accuracy {mean:.3f}: on to {stages[stage][0]} tokens")


@torch.no_grad()
def check_export(model, out, device):
    """transformers' own forward of the saved directory against this script's forward on the same weights."""
    saved = LlamaForCausalLM.from_pretrained(out, dtype=torch.float32).to(device).eval()
    ids, positions, targets = make_batch(torch.Generator(device=device).manual_seed(7), random.Random(7), 1024, 1, 16, N_QUESTIONS, False, device)
    theirs = saved(input_ids=ids).logits.gather(1, targets[..., None].expand(-1, -1, task.VOCAB))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        ours = answer_logits(saved, ids, positions, targets)
    err = ((ours - theirs).norm() / theirs.norm()).item()
    agree = (ours.argmax(-1) == theirs.argmax(-1)).float().mean().item()
    print(f"export check: transformers' forward of {out} vs ours (bf16): answer logits rel err {err:.2e}, argmax agrees at "
          f"{agree:.0%} -> {'PASS' if err < 3e-2 else 'FAIL'}")
    return {"answer_logits_relative_error": round(err, 5), "argmax_agrees": round(agree, 4), "pass": err < 3e-2}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="directory to write the Hugging Face model to")
    p.add_argument("--minutes", type=float, default=3.5, help="training time limit (evaluation and saving come after)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="a few tiny steps: checks the script, trains nothing")
    args = p.parse_args()
    device = torch.device("cuda")
    torch.manual_seed(args.seed)
    with device:
        model = LlamaForCausalLM(model_config(args.layers))
    params = sum(p.numel() for p in model.parameters())
    print(f"{params / 1e6:.1f}M parameters on {torch.cuda.get_device_name()}")
    model.train()
    steps, last_length, seconds = train(model, args, device)
    model.eval()
    rng, gen = random.Random(args.seed + 1), torch.Generator(device=device).manual_seed(args.seed + 1)
    accuracy = {}
    sequences = 1 if args.smoke else 4
    for length in ([2048] if args.smoke else [16384, 32768, 65536]):
        accuracy[length] = evaluate(model, gen, rng, length, sequences, device)
        print(f"accuracy at {length} tokens (contiguous positions): {accuracy[length]:.3f}", flush=True)
    # Greedy, one new token: the model is trained to answer a question with one value and nothing after it.
    model.generation_config = GenerationConfig(bos_token_id=task.BOS, eos_token_id=task.EOS, do_sample=False, max_new_tokens=1)
    model.to(torch.bfloat16).save_pretrained(args.out)
    vocab.write(args.out)
    print(f"saved {args.out} after {steps} steps")
    export = check_export(model, args.out, device)
    results = {
        "command": "python3 bench/retrieval/" + " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        "seed": args.seed, "lr": args.lr, "layers": args.layers, "parameters": params, "minutes_limit": args.minutes,
        "steps": steps, "train_seconds": round(seconds, 1), "last_stage_tokens": last_length, "device": torch.cuda.get_device_name(),
        "torch": torch.__version__, "questions_per_length": sequences * N_QUESTIONS,
        "accuracy": {str(k): round(v, 4) for k, v in accuracy.items()},
        "export_check": export,
    }
    with open(os.path.join(args.out, "train_results.json"), "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
