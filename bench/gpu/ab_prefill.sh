#!/usr/bin/env bash
# The 1-GPU prefill of the 8B shape timed with two builds in one call, alternating so that both meet the same
# clocks and the same power limit: "within 2% of the old build" (issue: one engine loop). Needs two published
# builds (scripts/gpu.sh publish on each commit); the old one may travel packed (tar -cJf old.tar.xz linux-x64).
#   bench/gpu/ab_prefill.sh OLD(DIR|.tar.xz) NEW_DIR [CONTEXT=131072] [ROUNDS=3]
# Writes $OUT/ab-prefill.txt (one line per run: build, round, TTFT ms) and prints each build's best and median.
set -uo pipefail
old=${1:?old build: a folder with longctx, or its .tar.xz} new=${2:?new build: a folder with longctx}
ctx=${3:-131072} rounds=${4:-3}
results=${OUT:-/tmp/longctx-out}
mkdir -p "$results"
if [[ $old == *.tar.xz ]]; then
  mkdir -p /tmp/ab-old && tar -C /tmp/ab-old -xJf "$old" && old=$(dirname "$(find /tmp/ab-old -name longctx -type f | head -1)")
fi
log="$results/ab-prefill.txt"
: > "$log"
for r in $(seq "$rounds"); do
  for build in old new; do
    dir=$old; [[ $build == new ]] && dir=$new
    chmod +x "$dir/longctx"
    # --warmup 1 (the default) builds the cuDNN plans of the context's shapes before the timed prefill.
    ms=$("$dir/longctx" bench --config llama3-8b --context "$ctx" --gpus 1 --strategy pass-kv --json 2> "$results/ab-$build-$r.err" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["points"][0]["ttft_ms"])') || ms=FAIL
    echo "$build $r $ms" | tee -a "$log"
  done
done
python3 - "$log" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    build, _, ms = line.split()
    if ms != "FAIL": runs.setdefault(build, []).append(float(ms))
for build, ms in runs.items():
    print(f"{build}: best {min(ms):.1f} ms, median {statistics.median(ms):.1f} ms over {len(ms)} runs")
if len(runs) == 2:
    print(f"new / old (best): {min(runs['new']) / min(runs['old']):.4f}")
PY
