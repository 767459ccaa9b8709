"""PyTorch peer: PyTorch's own context parallelism (torch.distributed.tensor.experimental context_parallel: ring
attention over SDPA, head-tail load balance) on a Llama-3-8B-shaped model, random bf16 weights, a full copy per rank
like our engine. A check (CP against no CP at 4K, 2 layers) first, then per context a warm-up and a timed prefill.
  torchrun --standalone --nproc-per-node N bench/gpu/torch_cp.py --context 32768,131072 --layers 32
      [--backend cudnn|flash|efficient] [--rotate allgather|alltoall] [--json PATH] [--budget-s 240]"""
import argparse, faulthandler, json, os, re, time
for _k, _v in (("NCCL_NVLS_ENABLE", "0"), ("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1"), ("NVSHMEM_DISABLE_NVLS", "1"),
               ("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")):
    os.environ.setdefault(_k, _v)  # no NVLink multicast on the shared hosts; all must be set before CUDA starts
from datetime import timedelta
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F  # context_parallel patches F.scaled_dot_product_attention: call it through F only
from torch.distributed.device_mesh import init_device_mesh
from torch.nn.attention import SDPBackend, sdpa_kernel
try:  # torch >= 2.9 keeps the implementation here; the older module path is the fallback
    from torch.distributed.tensor.experimental._context_parallel._attention import context_parallel, set_rotate_method
except ImportError:
    from torch.distributed.tensor.experimental._attention import context_parallel, set_rotate_method

HIDDEN, HEADS, KV_HEADS, HEAD_DIM, FFN, VOCAB, THETA, EPS = 4096, 32, 8, 128, 14336, 128256, 500000.0, 1e-5
BACKENDS = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION}
# Dense bf16 peaks by product (NVIDIA's datasheet figures with sparsity, halved), as longctx bench's PeakFlops.cs
# has them, variants first; another device has no MFU.
PEAK_FLOPS = [(r"\bH200\s+NVL\b", 835.5e12), (r"\bH200\b", 989.4e12), (r"\bH100\s+NVL\b", 835.5e12), (r"\bH100\s+PCIe\b", 756.5e12),
              (r"\bH100\b", 989.4e12), (r"\bH20\b", 148e12), (r"\bA100\b", 312e12), (r"\bL40S\b", 362.05e12), (r"\bB200\b", 2250e12)]


def peak_flops(device):
    return next((flops for pattern, flops in PEAK_FLOPS if re.search(pattern, device, re.IGNORECASE)), None)

BF16 = torch.bfloat16


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), -1) * sin


class Layer(nn.Module):
    def __init__(self, repeat_kv):
        super().__init__()
        self.attn_norm = nn.Parameter(torch.ones(HIDDEN, dtype=BF16))
        self.mlp_norm = nn.Parameter(torch.ones(HIDDEN, dtype=BF16))
        self.qkv = nn.Linear(HIDDEN, (HEADS + 2 * KV_HEADS) * HEAD_DIM, bias=False, dtype=BF16)
        self.o = nn.Linear(HEADS * HEAD_DIM, HIDDEN, bias=False, dtype=BF16)
        self.gate_up = nn.Linear(HIDDEN, 2 * FFN, bias=False, dtype=BF16)
        self.down = nn.Linear(FFN, HIDDEN, bias=False, dtype=BF16)
        self.repeat_kv = repeat_kv

    def forward(self, x, cos, sin):
        b, s, _ = x.shape
        q, k, v = self.qkv(F.rms_norm(x, (HIDDEN,), self.attn_norm, EPS)).split(
            [HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM], -1)
        q = rope(q.view(b, s, HEADS, HEAD_DIM).transpose(1, 2), cos, sin)
        k = rope(k.view(b, s, KV_HEADS, HEAD_DIM).transpose(1, 2), cos, sin)
        v = v.view(b, s, KV_HEADS, HEAD_DIM).transpose(1, 2)
        if self.repeat_kv:  # fallback for a backend whose CP path rejects grouped KV heads (4x the ring traffic)
            k, v = k.repeat_interleave(HEADS // KV_HEADS, 1), v.repeat_interleave(HEADS // KV_HEADS, 1)
        # is_causal and no mask: the only form the CP ring takes (an explicit mask made the flash backend refuse).
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=not self.repeat_kv)
        x = x + self.o(o.transpose(1, 2).reshape(b, s, HEADS * HEAD_DIM))
        gate, up = self.gate_up(F.rms_norm(x, (HIDDEN,), self.mlp_norm, EPS)).chunk(2, -1)
        return x + self.down(F.silu(gate) * up)


class Llama(nn.Module):
    def __init__(self, layers, repeat_kv):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, HIDDEN, dtype=BF16)
        self.layers = nn.ModuleList(Layer(repeat_kv) for _ in range(layers))
        self.norm = nn.Parameter(torch.ones(HIDDEN, dtype=BF16))
        self.head = nn.Linear(HIDDEN, VOCAB, bias=False, dtype=BF16)

    def forward(self, ids, pos, total, layers, sum_over_ranks):
        """ids, pos: this rank's tokens and their global positions (1, s), in any order. Returns the float32
        logits of global position total-1, which exactly one rank holds (where the load balancer put it)."""
        inv_freq = THETA ** -(torch.arange(0, HEAD_DIM, 2, device=ids.device, dtype=torch.float32) / HEAD_DIM)
        angles = (pos[0, :, None].float() * inv_freq).repeat(1, 2)  # float32, as transformers computes RoPE
        cos, sin = angles.cos().to(BF16), angles.sin().to(BF16)
        x = self.embed(ids)
        for layer in self.layers[:layers]:
            x = layer(x, cos, sin)
        is_last = pos[0] == total - 1
        i = torch.argmax(is_last.int())
        h = x[0, i] * is_last[i]  # zeros on the ranks without the last position: a sum hands it to every rank
        if sum_over_ranks:
            dist.all_reduce(h)
        return self.head(F.rms_norm(h, (HIDDEN,), self.norm, EPS)).float()


def build(layers, repeat_kv):
    with torch.device("meta"):
        model = Llama(layers, repeat_kv)
    model = model.to_empty(device="cuda").requires_grad_(False)
    torch.manual_seed(0)
    for name, p in model.named_parameters():
        if "norm" in name:
            p.fill_(1.0)
        else:
            p.normal_(0, 0.02)
        dist.broadcast(p, 0)  # identical copies on every rank, whatever the RNG does per device
    return model


def model_flops(tokens, layers):
    """longctx bench's count (BenchCommand.ModelFlops): layer weights, causal attention, the last LM head row."""
    q, kv = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    per_layer = HIDDEN * q * 2 + HIDDEN * kv * 2 + 3 * HIDDEN * FFN
    return 2 * per_layer * layers * tokens + 2 * tokens * tokens * q * layers + 2 * HIDDEN * VOCAB


def random_ids(n):
    return torch.randint(0, VOCAB, (1, n), generator=torch.Generator().manual_seed(n)).cuda()


def cp_prefill(model, mesh, ids, layers):
    """Returns the last position's logits and the number of tokens this rank held."""
    n = ids.shape[1]
    # context_parallel shards its buffers in place (resize_): give it tensors that own their storage.
    ids, pos = ids.clone(), torch.arange(n, device="cuda")[None].clone()
    with context_parallel(mesh, buffers=[ids, pos], buffer_seq_dims=[1, 1], no_restore_buffers={ids, pos}):
        return model(ids, pos, n, layers, sum_over_ranks=True), ids.shape[1]


def check(model, mesh, n, layers, tag):
    """CP prefill, then on rank 0 the same model without CP: a line and a result (None, None elsewhere)."""
    ids = random_ids(n)
    cp, held = cp_prefill(model, mesh, ids, layers)
    if dist.get_rank() != 0:
        return None, None
    ref = model(ids, torch.arange(n, device="cuda")[None], n, layers, sum_over_ranks=False)
    err = (torch.linalg.vector_norm(cp.double() - ref.double()) / torch.linalg.vector_norm(ref.double())).item()
    top = "agrees" if cp.argmax().item() == ref.argmax().item() else "differs"
    line = (f"{tag} check {n} tokens {layers} layers ({held} per rank): last-position logits rel err {err:.2e} "
            f"vs no CP, top-1 {top} -> {'PASS' if err < 2e-2 else 'FAIL'}")
    return line, {"context": n, "layers": layers, "tokens_per_rank": held, "rel_err": err, "top1": top, "pass": err < 2e-2}


def failure(e):
    return f"FAIL {type(e).__name__}: {(str(e).splitlines() or [''])[0]}"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--context", default="32768,131072", help="comma-separated prompt lengths")
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--backend", choices=sorted(BACKENDS), default="cudnn", help="SDPA kernel inside the ring")
    p.add_argument("--rotate", choices=["allgather", "alltoall"], default="allgather", help="how KV shards move")
    p.add_argument("--check-tokens", type=int, default=4096, help="CP-vs-no-CP check length (2 layers); 0 skips it")
    p.add_argument("--repeat-kv", action="store_true", help="expand KV heads before SDPA instead of enable_gqa")
    p.add_argument("--json", help="write the results here (rewritten after every line)")
    p.add_argument("--budget-s", type=float, default=240, help="the whole run ends after this many seconds")
    a = p.parse_args()
    if "LOCAL_RANK" not in os.environ:
        raise SystemExit("torch_cp.py: launch it with torchrun --standalone --nproc-per-node N bench/gpu/torch_cp.py ...")
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    contexts = [int(c) for c in a.context.split(",")]
    for n in contexts + ([a.check_tokens] if a.check_tokens else []):
        if n <= 0 or n % (2 * world):
            raise SystemExit(f"torch_cp.py: context {n} must be a positive multiple of 2 x {world} GPUs (head-tail load balance)")
    # Never hang: a C-level timer (it needs no GIL) prints "Timeout", every thread's stack, and exits 1.
    faulthandler.dump_traceback_later(a.budget_s, exit=True)
    torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl", timeout=timedelta(seconds=a.budget_s), device_id=torch.device("cuda", torch.cuda.current_device()))
    mesh = init_device_mesh("cuda", (world,))
    set_rotate_method(a.rotate)
    tag = f"torch context_parallel {world} gpu"
    out = {"peer": "torch context_parallel", "torch": torch.__version__, "device": torch.cuda.get_device_name(),
           "ranks": world, "layers": a.layers, "backend": a.backend, "rotate": a.rotate, "check": [], "points": []}

    def report(line, point, key="points"):
        if rank == 0 and line:
            print(line, flush=True)
            out[key].append(point)
            if a.json:
                with open(a.json, "w") as f:
                    json.dump(out, f, indent=1)

    model = build(a.layers, a.repeat_kv)
    with torch.no_grad(), sdpa_kernel([BACKENDS[a.backend]]):
        if a.check_tokens:
            try:
                report(*check(model, mesh, a.check_tokens, min(2, a.layers), tag), key="check")
            except Exception as e:  # noqa: BLE001 - one line naming the failure; the timings still run
                report(f"{tag} check {a.check_tokens} tokens: {failure(e)}", {"error": str(e)}, key="check")
            dist.barrier()
        for n in contexts:
            name, point = f"{tag} {n} tokens {a.layers} layers", {"ranks": world, "context": n}
            try:
                ids = random_ids(n)
                cp_prefill(model, mesh, ids, a.layers)  # warm-up: cuDNN plans, NCCL channels, the allocator's pool
                torch.cuda.synchronize()
                dist.barrier()
                start = time.perf_counter()
                cp_prefill(model, mesh, ids, a.layers)[0].cpu()  # logits on the host: TTFT as longctx bench takes it
                slowest = torch.tensor((time.perf_counter() - start) * 1e3, device="cuda")
                dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
                ms = slowest.item()
                tflops = model_flops(n, a.layers) / ms / 1e9
                report(f"{name}: TTFT {ms:.0f} ms, {tflops:.0f} TFLOP/s ({a.backend}, {a.rotate})",
                       {**point, "ttft_ms": round(ms, 2), "model_tflops": round(tflops, 2),
                        "mfu": round(tflops * 1e12 / (peak * world), 4) if (peak := peak_flops(out["device"])) else None, "status": "ok"})
            except Exception as e:  # noqa: BLE001 - OOM or a failure: one line, then the next context
                oom = isinstance(e, torch.OutOfMemoryError)
                report(f"{name}: {'OOM' if oom else failure(e)}", {**point, "status": "OOM" if oom else "FAIL", "error": str(e)})
            torch.cuda.empty_cache()
    dist.barrier()
    faulthandler.cancel_dump_traceback_later()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
