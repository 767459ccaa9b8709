#!/usr/bin/env bash
# GPU ranks as processes, checked on the GPU machine (needs >= 2 GPUs and .publish/linux-x64, carried):
# `longctx launch --nproc 2 -- generate --device cuda` against the transformers fixture and against the
# threaded `--gpus 2` group (same tokens, same logits), an 8B-shaped 8K prompt both ways, the one-line
# errors (checks, ~5 min); batched decode at ~128K, batch 1 and 8 (decode, ~6 min). One line per check,
# PASS/FAIL; the summary is also in $OUT/launch-summary.txt.
#   bench/gpu/launch_check.sh [checks|decode|all]
set -uo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-all}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
out=${OUT:-/tmp/longctx-out}
mkdir -p "$out"
bin=.publish/linux-x64/longctx
chmod +x "$bin"
summary="$out/launch-summary.txt"
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }
same() { # name, threads json, processes json, threads dump, processes dump
  python3 - "$@" <<'PY' | tee -a "$summary"
import json, sys
from safetensors.torch import load_file
name, tj, pj, td, pd = sys.argv[1:6]
a, b = json.load(open(tj)), json.load(open(pj))
d = (load_file(td)["logits"] - load_file(pd)["logits"]).abs().max().item()
ring = lambda r: r.get("strategy_chosen", r["strategy"])
# Same ring: the same kernels on the same bytes, so the logits agree bit for bit. (auto may pick differently per run.)
ok = a["token_ids"] == b["token_ids"] and (d == 0 or ring(a) != ring(b))
print(f"{name}: tokens {'same' if a['token_ids'] == b['token_ids'] else 'DIFFERENT'}, logits max |diff| {d:.3g} ({ring(a)} / {ring(b)}), "
      f"TTFT threads {a['ttft_ms']:.0f} ms / processes {b['ttft_ms']:.0f} ms ({b['device']}) -> {'PASS' if ok else 'FAIL'}")
PY
}

fx=tests/data/fixtures/tiny-llama3
if [[ $mode != decode ]]; then
python3 bench/gpu/compare.py ids "$fx" "$out/ids.json"
python3 -c "import json, random; random.seed(0); json.dump([random.randrange(128256) for _ in range(8192)], open('$out/ids-8k.json', 'w'))"
for s in pass-kv pass-q auto; do
  common=(--strategy "$s" --temperature 0 --max-new-tokens 16 --dump-last 4 --json)
  "$bin" generate --device cuda --gpus 2 --model "$fx" --prompt-ids "$out/ids.json" "${common[@]}" --dump-logits "$out/lt-$s.safetensors" > "$out/lt-$s.json" 2> "$out/lt-$s.err" \
    || { note "fixture threads $s: FAIL $(tail -1 "$out/lt-$s.err")"; continue; }
  "$bin" launch --nproc 2 -- generate --device cuda --model "$fx" --prompt-ids "$out/ids.json" "${common[@]}" --dump-logits "$out/lp-$s.safetensors" > "$out/lp-$s.json" 2> "$out/lp-$s.err" \
    || { note "fixture launch $s: FAIL $(tail -1 "$out/lp-$s.err")"; continue; }
  note "$(python3 bench/gpu/compare.py fixture "$fx" "$out/lp-$s.safetensors" "$out/lp-$s.json" "tiny-llama3 launch 2 processes $s")"
  same "tiny-llama3 $s threads vs processes" "$out/lt-$s.json" "$out/lp-$s.json" "$out/lt-$s.safetensors" "$out/lp-$s.safetensors"
done

# An 8B-shaped model (dummy weights, 32 layers), 8K prompt: large ring messages between processes.
common=(--config llama3-8b --load-format dummy --prompt-ids "$out/ids-8k.json" --strategy pass-kv --temperature 0 --max-new-tokens 8 --json)
if "$bin" generate --device cuda --gpus 2 "${common[@]}" --dump-logits "$out/l8-t.safetensors" > "$out/l8-t.json" 2> "$out/l8-t.err" &&
   "$bin" launch --nproc 2 -- generate --device cuda "${common[@]}" --dump-logits "$out/l8-p.safetensors" > "$out/l8-p.json" 2> "$out/l8-p.err"; then
  same "8B-shape 8K pass-kv threads vs processes" "$out/l8-t.json" "$out/l8-p.json" "$out/l8-t.safetensors" "$out/l8-p.safetensors"
else
  note "8B-shape 8K: FAIL $(tail -qn1 "$out/l8-t.err" "$out/l8-p.err" 2>/dev/null | tr '\n' ' ')"
fi

# One-line errors.
expect() { # name, pattern, command...
  local name=$1 pattern=$2; shift 2
  local err; err=$("$@" 2>&1 >/dev/null); local rc=$?
  if [[ $rc -ne 0 && $(wc -l <<< "$err") -eq 1 && $err =~ $pattern ]]; then note "$name: PASS ($err)"; else note "$name: FAIL (rc $rc: $err)"; fi
}
expect "LOCAL_RANK beyond the GPUs" "LOCAL_RANK=9" env RANK=0 WORLD_SIZE=1 LOCAL_RANK=9 MASTER_ADDR=127.0.0.1 MASTER_PORT=29561 LONGCTX_JOB_ID=check \
  "$bin" generate --device cuda --model "$fx" --prompt-ids "$out/ids.json"
expect "rendezvous timeout" "127.0.0.1:29562" env RANK=1 WORLD_SIZE=2 LOCAL_RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=29562 LONGCTX_JOB_ID=check LONGCTX_RENDEZVOUS_TIMEOUT=3 \
  "$bin" generate --device cuda --model "$fx" --prompt-ids "$out/ids.json"
expect "batch 8 x 128K on one GPU" "KV cache per GPU" "$bin" bench --config llama3-8b --context 130000 --gpus 1 --strategy pass-kv --decode-steps 4 --batch 8

fi

# Decode on the distributed cache at ~128K, batch 1 and 8 (batch 8 needs 2+ H200s: ~82 GB of KV each on 2).
ngpu=$(nvidia-smi -L | wc -l)
[[ $mode == checks ]] || for b in 1 8; do
  gpus="1,2"; [[ $b == 8 ]] && gpus=2
  [[ $ngpu -ge 4 ]] && gpus="$gpus,4"
  "$bin" bench --config llama3-8b --context 130000 --gpus "$gpus" --strategy pass-kv --decode-steps 16 --batch $b --json > "$out/decode-b$b.json" 2> "$out/decode-b$b.err" \
    || { note "decode batch $b: FAIL $(tail -1 "$out/decode-b$b.err")"; continue; }
  python3 - "$out/decode-b$b.json" <<'PY' | tee -a "$summary"
import json, sys
for p in json.load(open(sys.argv[1]))["points"]:
    print(f"decode 130000 tokens, batch {p['batch']}, {p['ranks']} gpu: {p['decode_ms_per_step']} ms/step, {p['decode_ms_per_token']} ms/token (TTFT {p['ttft_ms']:.0f} ms)")
PY
done
echo; echo "==== launch summary ===="; cat "$summary"
