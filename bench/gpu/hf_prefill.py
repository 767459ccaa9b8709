"""PyTorch peer: Hugging Face transformers prefill time (TTFT) of a Llama-3-8B-shaped model with random bf16
weights on one GPU, SDPA with the cuDNN backend, logits of the last position only. Each length is run once untimed at
that same length first (cuDNN builds its plans for the shapes it meets; LongCtx's bench warms the same way), then
timed. Usage: python3 bench/gpu/hf_prefill.py LEN [LEN ...]   (prints one line per length)"""
import sys, time
import torch
from transformers import LlamaConfig, LlamaForCausalLM

cfg = LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072, rope_theta=500000.0,
                  rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                "original_max_position_embeddings": 8192}, torch_dtype=torch.bfloat16)
with torch.device("meta"):
    model = LlamaForCausalLM(cfg)
model = model.to_empty(device="cuda").to(torch.bfloat16)
with torch.no_grad():
    for p in model.parameters():
        p.normal_(0, 0.02)
model.eval()
backend = torch.nn.attention.SDPBackend.CUDNN_ATTENTION
for n in [int(a) for a in sys.argv[1:]]:
    ids = torch.randint(0, cfg.vocab_size, (1, n), device="cuda")
    with torch.no_grad(), torch.nn.attention.sdpa_kernel([backend]):
        model(ids, logits_to_keep=1)
        torch.cuda.synchronize()
        t = time.perf_counter()
        model(ids, logits_to_keep=1)
        torch.cuda.synchronize()
        ms = (time.perf_counter() - t) * 1e3
    print(f"pytorch-hf 1 gpu {n} tokens: TTFT {ms:.0f} ms")
    torch.cuda.empty_cache()
