#!/usr/bin/env bash
# One round on the GPU machine (see scripts/gpu.sh, which publishes and calls this): the GPU checks
# (fixture parity on 1..N GPUs with both rings, transformers parity of an 8B-shaped model), the
# benchmarks, and the PyTorch peer, ending with a short table. Needs .publish/linux-x64 (carried).
#   bench/gpu/run.sh [smoke|quick|full]   (smoke: fixture + 8K bench; quick: + transformers at 8K)
set -uo pipefail
cd "$(dirname "$0")/../.."
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
mode=${1:-full}
out=${OUT:-/tmp/longctx-out}
mkdir -p "$out"
bin=.publish/linux-x64/longctx
chmod +x "$bin"
ngpu=$(nvidia-smi -L | wc -l)
nvidia-smi -L
summary="$out/summary.txt"
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }

# 1. The tiny Llama 3 fixture (reference from transformers in float64) on 1..N GPUs, both rings.
fx=tests/data/fixtures/tiny-llama3
python3 bench/gpu/compare.py ids "$fx" "$out/ids.json"
for g in $(seq 1 "$ngpu"); do
  for s in pass-kv pass-q; do
    [[ $g == 1 && $s == pass-q ]] && continue
    if "$bin" generate --device cuda --gpus "$g" --strategy "$s" --model "$fx" --prompt-ids "$out/ids.json" --temperature 0 \
        --max-new-tokens 16 --dump-logits "$out/fx-$g-$s.safetensors" --dump-last 4 --json > "$out/fx-$g-$s.json" 2> "$out/fx-$g-$s.err"; then
      note "$(python3 bench/gpu/compare.py fixture "$fx" "$out/fx-$g-$s.safetensors" "$out/fx-$g-$s.json" "tiny-llama3 $g gpu $s")"
    else
      note "tiny-llama3 $g gpu $s: FAIL $(tail -1 "$out/fx-$g-$s.err")"
    fi
  done
done

# 2. An 8B-shaped model (2 layers, random bf16) against transformers' float32 logits at 8K and 32K.
lens="8192 32768"; [[ $mode == quick ]] && lens="8192"; [[ $mode == smoke ]] && lens=""
[[ -n $lens ]] && { python3 bench/gpu/compare.py hf-model /tmp/m8b 2> "$out/hf-model.err" || note "hf-model: FAIL $(tail -1 "$out/hf-model.err")"; }
for n in $lens; do
  python3 bench/gpu/compare.py hf-logits /tmp/m8b "$n" "$out/ids-$n.json" "$out/hf-$n.safetensors" 2> "$out/hf-$n.err" \
    || { note "transformers logits $n: FAIL $(tail -1 "$out/hf-$n.err")"; continue; }
  for g in 1 "$ngpu"; do
    for s in pass-kv pass-q; do
      [[ $g == 1 && $s == pass-q ]] && continue
      if "$bin" generate --device cuda --gpus "$g" --strategy "$s" --model /tmp/m8b --prompt-ids "$out/ids-$n.json" --max-new-tokens 0 \
          --dump-logits "$out/m8b-$n-$g-$s.safetensors" --json > "$out/m8b-$n-$g-$s.json" 2> "$out/m8b-$n-$g-$s.err"; then
        note "$(python3 bench/gpu/compare.py hf-compare "$out/hf-$n.safetensors" "$out/m8b-$n-$g-$s.safetensors" "8B-shape 2 layers $n tokens $g gpu $s")"
      else
        note "8B-shape $n $g gpu $s: FAIL $(tail -1 "$out/m8b-$n-$g-$s.err")"
      fi
    done
  done
done

# 3. Benchmarks: 8B shape, dummy weights, all 32 layers.
gpus=1; [[ $ngpu -gt 1 ]] && gpus="1,$ngpu"
ctx="32768,131072"; [[ $mode != full ]] && ctx="8192"
"$bin" bench --config llama3-8b --context "$ctx" --gpus "$gpus" --strategy pass-kv --profile --json > "$out/bench-pass-kv.json" 2> "$out/bench-pass-kv.err" || tail -3 "$out/bench-pass-kv.err"
# Decode on the distributed cache just under 128K (a 131072-token prompt leaves no position to decode into).
dctx=130000; [[ $mode != full ]] && dctx=8192
"$bin" bench --config llama3-8b --context "$dctx" --gpus "$gpus" --strategy pass-kv --decode-steps 32 --json > "$out/bench-decode.json" 2> "$out/bench-decode.err" || tail -3 "$out/bench-decode.err"
if [[ $ngpu -gt 1 ]]; then
  for s in pass-q star apb; do
    "$bin" bench --config llama3-8b --context "$ctx" --gpus "$ngpu" --strategy $s --json > "$out/bench-$s.json" 2> "$out/bench-$s.err" || tail -3 "$out/bench-$s.err"
  done
fi
python3 - "$out" >> "$summary" <<'PY'
import json, sys, glob
for f in sorted(glob.glob(sys.argv[1] + "/bench-*.json")):
    try: d = json.load(open(f))
    except Exception: print(f"{f}: no result"); continue
    for p in d["points"]:
        s = p.get("time_split_ms") or {}
        split = " split gemm/attn/comm/other ms " + "/".join(f"{s.get(k, 0):.0f}" for k in ("gemm", "attention", "communication", "other")) if s else ""
        extra = f" decode {p['decode_ms_per_token']} ms/token" if "decode_ms_per_token" in p else ""
        if "logits_relative_error" in p: extra += f" logits err vs exact {p['logits_relative_error']} top-1 {'agrees' if p['top1_agrees'] else 'differs'}"
        print(f"longctx {p['ranks']} gpu {p['context']} tokens {p['strategy']}: TTFT {p['ttft_ms']:.0f} ms, {p['model_tflops']:.0f} TFLOP/s, MFU {p['mfu']}, eff {p['parallel_efficiency']}{split}{extra}")
PY

# 4. The PyTorch peer on one GPU.
[[ $mode == full ]] && python3 bench/gpu/hf_prefill.py 32768 131072 >> "$summary" 2> "$out/hf-prefill.err"
echo; echo "==== summary ===="; cat "$summary"
