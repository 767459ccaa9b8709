"""Builds the reference data the CPU tests hold the engine to, with Hugging Face transformers.

Run on the GPU machine (it has torch + transformers; CPU is enough):
    python3 bench/reference/make_fixtures.py --out $OUT --qwen-tokenizer .cache/tokenizers/qwen3
Writes:
  tiny-qwen2/            a Qwen2 model directory (q/k/v bias, GQA 3:1, 3 layers, untied embeddings),
                         config.json rewritten in transformers-4 style (top-level rope_theta), plus
                         reference.safetensors (input_ids, logits_last4, argmax_all, greedy16) computed
                         in float64 from the bf16-rounded weights, as the tiny-llama3 fixture is.
  qwen3-tokenizer-reference.json   HF `tokenizers` ids for the llama3 reference texts and the corpus.
"""
import argparse, json, os, shutil, sys
import torch
from safetensors.torch import save_file


def make_qwen2(out_dir):
    from transformers import Qwen2Config, Qwen2ForCausalLM
    torch.manual_seed(1234)
    cfg = Qwen2Config(
        vocab_size=8192, hidden_size=96, intermediate_size=256, num_hidden_layers=3,
        num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=32768,
        rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
        use_sliding_window=False, bos_token_id=8000, eos_token_id=8001)
    model = Qwen2ForCausalLM(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.08)
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
    model = model.to(torch.bfloat16)
    d = os.path.join(out_dir, "tiny-qwen2")
    model.save_pretrained(d, safe_serialization=True)
    # Rewrite config.json the way transformers 4 (and most published Qwen2.5 checkpoints) write it.
    c = json.load(open(os.path.join(d, "config.json")))
    rp = c.pop("rope_parameters", None) or {}
    c["rope_theta"] = rp.get("rope_theta", 1000000.0)
    c["rope_scaling"] = None
    json.dump(c, open(os.path.join(d, "config.json"), "w"), indent=2)
    ref = Qwen2ForCausalLM.from_pretrained(d, torch_dtype=torch.float64).eval()
    g = torch.Generator().manual_seed(99)
    ids = torch.randint(0, 8000, (1, 1531), generator=g)
    with torch.no_grad():
        logits = ref(ids).logits[0]
        out = ref.generate(ids, max_new_tokens=16, do_sample=False, attention_mask=torch.ones_like(ids))
    save_file({
        "input_ids": ids[0].contiguous(),
        "logits_last4": logits[-4:].float().contiguous(),
        "argmax_all": logits.argmax(-1).contiguous(),
        "greedy16": out[0, ids.shape[1]:].contiguous(),
    }, os.path.join(d, "reference.safetensors"))
    print("tiny-qwen2 written; greedy16 =", out[0, ids.shape[1]:].tolist())


def make_qwen_tokenizer_reference(tok_dir, fixtures, out_dir):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    llama_ref = json.load(open(os.path.join(fixtures, "tokenizers", "llama3", "reference.json")))
    texts = [c["text"] for c in llama_ref["cases"]]
    corpus = open(os.path.join(fixtures, "corpus.txt"), encoding="utf-8").read()
    texts += [corpus, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", "12345678901234567890",
              "emoji 😀👍🏽 and CJK 你好，世界。日本語のテキスト"]
    cases = []
    for t in texts:
        enc = tok.encode(t, add_special_tokens=False)
        cases.append({"text": t, "ids": enc.ids, "decoded": tok.decode(enc.ids, skip_special_tokens=False)})
    json.dump({"tokenizer": "qwen3", "cases": cases}, open(os.path.join(out_dir, "qwen3-tokenizer-reference.json"), "w"),
              ensure_ascii=False, indent=0)
    print("qwen3 tokenizer reference:", len(cases), "cases")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--qwen-tokenizer", required=True)
    ap.add_argument("--fixtures", default="shared/fixtures")
    a = ap.parse_args()
    make_qwen2(a.out)
    make_qwen_tokenizer_reference(a.qwen_tokenizer, a.fixtures, a.out)
