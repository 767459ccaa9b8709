"""Checks a `longctx bench-attention --dump FILE` against torch: attention in float32 from the dumped bf16
q [S, H, D], k, v [S, Hkv, D] (GQA expanded, causal as the file's metadata says) and its log-sum-exp,
against the dumped cuDNN o and lse [S, H]. Prints one line each, with a 1e-2 relative-error threshold:
  attention vs torch SDPA: rel err X (ok|FAIL)
  lse vs torch logsumexp: rel err X (ok|FAIL)
Exit status 1 when either fails.   Usage: python3 bench/gpu/check_attention.py FILE
"""
import json, struct, sys
import torch
from safetensors.torch import load_file

THRESHOLD = 1e-2


def metadata(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n)).get("__metadata__", {})


def rel(a, b):
    return (torch.linalg.vector_norm(a.double() - b.double()) / torch.linalg.vector_norm(b.double())).item()


def main(path):
    meta = metadata(path)
    causal, scale = meta["mask"] == "causal", float(meta["scale"])
    t = load_file(path, device="cuda" if torch.cuda.is_available() else "cpu")
    # [S, H, D] -> [1, H, S, D]; K and V repeated per query-head group.
    q, k, v = (t[n].float().transpose(0, 1)[None] for n in ("q", "k", "v"))
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    reference = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)
    ok = True
    err = rel(t["o"].float(), reference[0].transpose(0, 1))
    ok &= err < THRESHOLD
    print(f"attention vs torch SDPA: rel err {err:.2e} ({'ok' if err < THRESHOLD else 'FAIL'})")
    # LSE row by row (a head at a time keeps the S x S scores small).
    lse = torch.empty(q.shape[1], q.shape[2], device=q.device)
    s_q, s_kv = q.shape[2], k.shape[2]
    hidden = torch.ones(s_q, s_kv, dtype=torch.bool, device=q.device).triu(s_kv - s_q + 1) if causal else None
    for h in range(q.shape[1]):
        scores = (q[0, h] @ k[0, h].T) * scale
        if hidden is not None:
            scores = scores.masked_fill(hidden, float("-inf"))
        lse[h] = torch.logsumexp(scores, dim=-1)
    err_lse = rel(t["lse"].float(), lse.T)
    ok &= err_lse < THRESHOLD
    print(f"lse vs torch logsumexp: rel err {err_lse:.2e} ({'ok' if err_lse < THRESHOLD else 'FAIL'})")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
