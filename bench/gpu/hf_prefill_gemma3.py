"""PyTorch peer for issue #29: Hugging Face transformers prefill time (TTFT) of a Gemma-3-12B-shaped text model (48 layers,
W = 1024, five local layers to one global, random bf16 weights) on one GPU with attn_implementation="sdpa", the logits
of the last position only. PyTorch picks the SDPA backend (cuDNN, flash or memory-efficient; transformers passes an
explicit mask for the sliding layers, which rules out cuDNN and flash for them). A length that fails (out of memory:
transformers builds the sliding layers' mask, and SDPA may fall back to materialising scores) is reported with the
error instead of a time.
Usage: python3 bench/gpu/hf_prefill_gemma3.py LEN [LEN ...]   (prints one line per length)"""
import sys, time
import torch
from transformers import Gemma3ForCausalLM, Gemma3TextConfig

layers = 48
cfg = Gemma3TextConfig(
    vocab_size=262208, hidden_size=3840, intermediate_size=15360, num_hidden_layers=layers, num_attention_heads=16,
    num_key_value_heads=8, head_dim=256, max_position_embeddings=131072, query_pre_attn_scalar=256, sliding_window=1024,
    layer_types=["sliding_attention" if (i + 1) % 6 else "full_attention" for i in range(layers)],
    rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
                     "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
    attn_implementation="sdpa", dtype=torch.bfloat16)
with torch.device("meta"):
    model = Gemma3ForCausalLM(cfg)
model = model.to_empty(device="cuda").to(torch.bfloat16)
with torch.no_grad():
    for p in model.parameters():
        p.normal_(0, 0.02)
model.eval()
for n in [int(a) for a in sys.argv[1:]]:
    ids = torch.randint(0, cfg.vocab_size, (1, n), device="cuda")
    try:
        with torch.no_grad():
            model(ids[:, :1024], logits_to_keep=1)
            torch.cuda.synchronize()
            t = time.perf_counter()
            model(ids, logits_to_keep=1)
            torch.cuda.synchronize()
            ms = (time.perf_counter() - t) * 1e3
        print(f"pytorch-hf gemma3-12b 1 gpu {n} tokens: TTFT {ms:.0f} ms (peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB)")
    except Exception as e:  # torch.OutOfMemoryError among others: say what it did
        print(f"pytorch-hf gemma3-12b 1 gpu {n} tokens: cannot run: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
