"""Checks of the CUDA backend against references, run by bench/gpu/run.sh on the GPU machine.

  ids FIXTURE_DIR OUT.json            write the fixture's reference input_ids as a JSON array
  fixture FIXTURE_DIR DUMP RESULT     compare a `generate --dump-logits` run with reference.safetensors
  hf-model DIR                        save a random Llama-3-8B-shaped model (2 layers, bf16) as a HF directory
  hf-logits DIR LEN IDS.json REF      random prompt of LEN ids; transformers' float32 last-position logits
  hf-compare REF DUMP RESULT          compare our dump with transformers' logits
Each comparison prints one line: name, relative L2 error, top-1 agreement, PASS/FAIL.
"""
import json, sys
import torch
from safetensors.torch import load_file, save_file


def rel(a, b):
    return (torch.linalg.vector_norm(a.double() - b.double()) / torch.linalg.vector_norm(b.double())).item()


def float32_last_logits(model, ids):
    """transformers' own modules in float32, with attention through SDPA's memory-efficient kernel
    (is_causal, GQA expanded): transformers' sdpa path builds an explicit S x S mask, which at 32K tokens
    asks for 128 GB."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb
    from torch.nn.attention import sdpa_kernel, SDPBackend
    import torch.nn.functional as F
    m, n = model.model, ids.numel()
    with torch.no_grad():
        x = m.embed_tokens(ids[None])
        cos, sin = m.rotary_emb(x, torch.arange(n, device=ids.device)[None])
        for layer in m.layers:
            a = layer.self_attn
            h = layer.input_layernorm(x)
            nh, nkv, d = model.config.num_attention_heads, model.config.num_key_value_heads, model.config.head_dim
            q = a.q_proj(h).view(1, n, nh, d).transpose(1, 2)
            k = a.k_proj(h).view(1, n, nkv, d).transpose(1, 2)
            v = a.v_proj(h).view(1, n, nkv, d).transpose(1, 2)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            k, v = k.repeat_interleave(nh // nkv, 1), v.repeat_interleave(nh // nkv, 1)
            with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION]):
                o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + a.o_proj(o.transpose(1, 2).reshape(1, n, nh * d))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return model.lm_head(m.norm(x[:, -1:]))[0].float().cpu()


def main():
    cmd = sys.argv[1]
    if cmd == "ids":
        ref = load_file(f"{sys.argv[2]}/reference.safetensors")
        json.dump(ref["input_ids"].tolist(), open(sys.argv[3], "w"))
    elif cmd == "fixture":
        ref = load_file(f"{sys.argv[2]}/reference.safetensors")
        ours = load_file(sys.argv[3])["logits"]
        result = json.load(open(sys.argv[4]))
        e = rel(ours, ref["logits_last4"])
        same = result["token_ids"] == ref["greedy16"].tolist()
        ok = e < 2e-2 and same
        print(f"{sys.argv[5]}: logits rel err {e:.2e}, greedy16 {'equal' if same else 'DIFFERENT'} -> {'PASS' if ok else 'FAIL'}")
    elif cmd == "hf-model":
        from transformers import LlamaConfig, LlamaForCausalLM
        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=2,
                          num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072,
                          rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=False,
                          rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})
        with torch.device("cuda"):
            model = LlamaForCausalLM(cfg).to(torch.bfloat16)
        model.save_pretrained(sys.argv[2])
    elif cmd == "hf-logits":
        from transformers import LlamaForCausalLM
        n = int(sys.argv[3])
        g = torch.Generator().manual_seed(n)
        ids = torch.randint(0, 128256, (n,), generator=g)
        json.dump(ids.tolist(), open(sys.argv[4], "w"))
        model = LlamaForCausalLM.from_pretrained(sys.argv[2], dtype=torch.float32).cuda()
        logits = float32_last_logits(model, ids.cuda())
        save_file({"logits": logits.contiguous()}, sys.argv[5])
    elif cmd == "hf-compare":
        ref = load_file(sys.argv[2])["logits"]
        ours = load_file(sys.argv[3])["logits"][-1:]
        e = rel(ours, ref)
        top = ours.argmax(-1).item() == ref.argmax(-1).item()
        ok = e < 2e-2
        print(f"{sys.argv[4]}: last-position logits rel err {e:.2e}, top-1 {'agrees' if top else 'differs'} -> {'PASS' if ok else 'FAIL'}")
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
