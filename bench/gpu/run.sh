#!/usr/bin/env bash
# One round on the GPU machine (see scripts/gpu.sh, which publishes and calls this). Needs
# .publish/linux-x64 (scripts/gpu.sh run unpacks it) and .publish/gpu-tests.tar.xz (carried). Sections, each adding lines to the summary printed last:
#   tests       the xunit GPU tests ([GpuTheory]) through tests/LongCtx.GpuTestRunner: FAIL/SKIP lines and the count
#   fixture     tiny-llama3 against transformers (float64 reference) on 1..N GPUs, both rings
#   attention   the attention block alone: cuDNN and our kernel against torch SDPA, TFLOP/s at 32K/128K,
#               causal blocks in row slices by length (the default), of 16K and of 8K; the decode kernel's KV read rate
#   tune        cuDNN call plans compared at 32K/128K (row slices, engine configuration; TUNE_PLANS
#               overrides the list), cuDNN only
#   serve       `longctx serve` on the tiny fixture on GPU 0: one completion with logprobs, one streamed chat
#   servegpu    `longctx serve` on GPU 0, 8B shape, dummy weights: 8 streaming short requests' time per output token alone and
#               while a 128K-token request prefills beside them (chunked prefill), and that request's TTFT (~2 minutes)
#   hf          an 8B-shaped model (2 layers, random bf16) against transformers' float32 logits, 8K and 32K
#   launch      GPU ranks as processes (bench/gpu/launch_check.sh checks)
#   bench       8B shape, dummy weights, 32 layers: prefill 32K/128K on 1, 2 and N GPUs, time split, pass-q, and decode below
#   calibrate   bench --calibrate on 1 (and 2) GPUs: the calibration files longctx plan reads (calibration-Ngpu.json), and
#               the planner's 32K/128K TTFT from them
#   share       a projection without communication: one GPU's share of a 2- and 4-GPU (on several GPUs: the N-GPU) pass-kv prefill, rank 0 alone with its peers
#               echoed (bench --one-rank-of): the ring's time without its communication
#   decode      decode at 130K, batch 1 on 1, 2 and N GPUs (with a profiled step's time split) and batch 8 on 2 and N
#   approx      star and apb beside exact pass-kv on N GPUs (error against exact); at the longest context also apb with equal
#               blocks, star at apb's anchor, apb at block/16 and block/32, star at block/16
#   kernels     the N-GPU 128K prefill's time by kernel on rank 0 (LONGCTX_PROFILE_BY_KERNEL=1): what a ring adds
#   copyring    the N-GPU pass-kv with ring transfers by copy engine (LONGCTX_RING_TRANSFERS=copy), A/B against the bench section's NCCL ring
#   million     1,048,576 tokens, 8B shape with a 1M window (llama3-8b-1m), pass-kv on 4+ GPUs (one prefill, ~2-3 minutes)
#   tp          tensor parallelism: the N GPUs as N/2 context x 2 tensor ranks and as 1 x N, beside N context ranks
#   hfprefill   PyTorch: HF transformers + cuDNN SDPA on one GPU, 32K and 128K, 32 layers
#   families    issue #29, Gemma-3-12B shape (gemma3-12b, dummy weights; W = 1024, five local layers to one global) on one GPU:
#               TTFT at 32K and 128K with the time split; one local layer's attention call against a global one's at its heads
#               (bench-attention --window 0,1024: 16/8 heads of 256, cuDNN and the own kernel, and decode over the window);
#               transformers + SDPA on the same shape (bench/gpu/hf_prefill_gemma3.py); rank 0's share of 4 at 128K
#               (--one-rank-of 4) beside the 1-GPU time
#   peer        PyTorch: torch context_parallel around HF transformers on N GPUs
#   retrieval   train four candidate retrieval models, evaluate the best with dense/pass-kv/star/apb (bench/retrieval)
#   fp8         issue #30 on one GPU (~4-5 minutes): FP8 GEMMs of the 8B shape at 128K rows against bf16 (bench-gemm), 8B
#               prefill at 32K/128K in bf16, with FP8 weights and with FP8 weights and attention, decode at 1K (bf16 and
#               FP8 weights) and at 130K (FP8 weights and KV), rank 0 of 4 at 128K (FP8 weights and KV), the 70B shape at
#               32K with FP8 weights, and each FP8 setting's logits against bf16; a table at the end of the summary
# Modes: smoke (tests, fixture, 8K bench), checks (every section at 8K, peer and retrieval as smokes),
# ours (tests fixture attention hf bench share approx hfprefill: about 10 minutes), others (peer retrieval: about 9 minutes),
# full (both: more than one 10-minute device call), retrieval, or a comma-separated list of sections. On 4 GPUs,
# whose time counts in full (three 10-minute calls a session at most), cp4 (fixture bench share kernels million copyring) and cp4-others
# (approx tp peer hfprefill) each fit one call; the GPU tests already ran on 2 (fourteenth round).
#   [CONTEXTS=32768,131072] [HF_LENS="8192 32768"] [TUNE_PLANS="rows=auto;..."] [TRAIN_MINUTES=4] [CANDIDATES="2e-3:4[:seed] ..."]
#   [GPU_TESTS_FILTER=Fp8 (the tests whose full name contains it)] [RETRIEVAL_FP8="--quantization fp8;--kv-cache-dtype fp8;--quantization fp8 --attention-dtype fp8"] [RETRIEVAL_MODEL=DIR|M.tar.xz] [KEEP_MODEL=1] [RETRIEVAL_CONTEXTS=16384,32768,65536] [PER_CONTEXT=24] [PROMPT_SEED=1234] [RETRIEVAL_STRATEGIES=dense,...] [RETRIEVAL_RANKS=2,4,8] bench/gpu/run.sh [smoke|checks|ours|others|cp4|cp4-others|full|retrieval|SECTION,...]
set -uo pipefail
cd "$(dirname "$0")/../.."
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
mode=${1:-full}
case $mode in
  smoke) sections=tests,fixture,bench; quick=1 ;;
  checks) sections=tests,fixture,attention,hf,launch,bench,share,approx,tp,peer,retrieval; quick=1 ;;
  ours) sections=tests,fixture,attention,hf,bench,share,approx,hfprefill; quick=0 ;;
  cp4) sections=fixture,bench,share,kernels,million,copyring; quick=0 ;;
  cp4-others) sections=approx,tp,peer,hfprefill; quick=0 ;;
  others) sections=peer,retrieval; quick=0 ;;
  full) sections=tests,fixture,attention,hf,bench,approx,tp,hfprefill,peer,retrieval; quick=0 ;;
  retrieval) sections=retrieval; quick=0 ;;
  *) sections=$mode; quick=0 ;;
esac
has() { [[ ",$sections," == *",$1,"* ]]; }
# Working files stay on the machine; only the summary (and the benchmark JSON) go to $OUT, which comes back.
out=/tmp/longctx-work
results=${OUT:-/tmp/longctx-out}
mkdir -p "$out" "$results"
rm -f "$results"/bench-*.json  # a warm machine keeps the last round's (without $OUT)
bin=.publish/linux-x64/longctx
chmod +x "$bin"
ngpu=$(nvidia-smi -L | wc -l)
nvidia-smi -L
summary="$results/summary.txt"
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }
# When each section ended (timing.txt beside the summary), to plan the next call's sections within 10 minutes. The
# benchmark JSON goes to $results as it is written, so a call cut at its limit still brings back what finished.
last_mark=0
mark() { (( SECONDS > last_mark )) && echo "$1 done at ${SECONDS} s" >> "$results/timing.txt"; last_mark=$SECONDS; }
fx=tests/data/fixtures/tiny-llama3

if has tests; then
  rm -rf .publish/gpu-tests && tar -C .publish -xJf .publish/gpu-tests.tar.xz # packed by scripts/gpu.sh publish
  runner=.publish/gpu-tests/LongCtx.GpuTestRunner
  chmod +x "$runner"
  "$runner" ${GPU_TESTS_FILTER:+--filter "$GPU_TESTS_FILTER"} > "$out/gpu-tests.txt" 2>&1
  grep -E '^(FAIL|SKIP) |^gpu tests: ' "$out/gpu-tests.txt" >> "$summary"
  grep -q '^gpu tests: ' "$out/gpu-tests.txt" || note "gpu tests: FAIL $(tail -1 "$out/gpu-tests.txt")"
  cp "$out/gpu-tests.txt" "$results"/ # small, and a failure's stack trace is on stderr there
fi
mark tests

if has attention; then
  "$bin" bench-attention --context 4096 --mask causal,none --attention cudnn,kernel --cudnn-calls "rows=1024" --dump "$out/attn.safetensors" > "$out/attn-check.txt" 2>&1 \
    || note "bench-attention dump: FAIL $(tail -1 "$out/attn-check.txt")"
  for m in causal none; do
    [[ -f $out/attn-$m.safetensors ]] && note "$m 4096: $(python3 bench/gpu/check_attention.py "$out/attn-$m.safetensors" 2>&1 | tr '\n' ' ')"
    rm -f "$out/attn-$m.safetensors"
  done
  "$bin" bench-attention --context 32768,131072 --heads 32 --kv-heads 8 --head-dim 128 --mask causal,none --attention cudnn,kernel \
    --cudnn-calls "rows=auto;rows=16384;rows=8192" --json > "$results/bench-attention.json" 2> "$out/bench-attention.err" || note "bench-attention: FAIL $(tail -1 "$out/bench-attention.err")"
  bench/gpu/attention_table.py "$results/bench-attention.json" >> "$summary"
  # The decode kernel alone: one query row over 8K-128K keys, 50 calls each (a call at 8K lasts ~30 us).
  "$bin" bench-attention --context 8192,32768,131072 --mask decode --repeat 50 --json > "$results/bench-attention-decode.json" 2> "$out/bench-attention-decode.err" \
    || note "bench-attention decode: FAIL $(tail -1 "$out/bench-attention-decode.err")"
  bench/gpu/attention_table.py "$results/bench-attention-decode.json" >> "$summary"
fi
mark attention

if has tune; then
  plans=${TUNE_PLANS:-"rows=auto;rows=16384;rows=8192;rows=4096;rows=0;rows=auto,engine=1"}
  "$bin" bench-attention --context 32768,131072 --heads 32 --kv-heads 8 --head-dim 128 --mask causal,none --attention cudnn \
    --cudnn-calls "$plans" --json > "$results/bench-attention-tune.json" 2> "$out/bench-attention-tune.err" || note "bench-attention tune: FAIL $(tail -1 "$out/bench-attention-tune.err")"
  bench/gpu/attention_table.py "$results/bench-attention-tune.json" >> "$summary"
fi
mark tune

if has serve; then
  bench/gpu/serve_check.sh "$bin" "$fx" "$out/serve" > "$out/serve.txt" 2>&1 || note "serve: FAIL $(tail -1 "$out/serve.txt")"
  grep '^serve: PASS' "$out/serve.txt" >> "$summary"
  cp "$out/serve/log.txt" "$results/serve-check.txt" 2>/dev/null
fi
mark serve

if has servegpu; then
  dir=$out/servegpu && rm -rf "$dir" && mkdir -p "$dir/tokenizer"
  tar -xJf .publish/tokenizer-llama3.tar.xz -C "$dir/tokenizer" || note "servegpu: FAIL no packed tokenizer (.publish/tokenizer-llama3.tar.xz)"
  long=${SERVE_LONG_TOKENS:-131071}; [[ $quick == 1 ]] && long=16383
  "$bin" serve --config llama3-8b --load-format dummy --device cuda --tokenizer "$dir/tokenizer" --port 0 \
    --max-num-batched-tokens "${SERVE_BATCH_TOKENS:-8192}" --log-level warning > "$dir/log.txt" 2>&1 &
  spid=$!
  url=""
  for _ in $(seq 1 120); do
    url=$(grep -oP 'listening on \K\S+' "$dir/log.txt" | head -1) && [[ -n $url ]] && break
    kill -0 $spid 2>/dev/null || break
    sleep 1
  done
  if [[ -z $url ]]; then note "servegpu: FAIL did not start: $(tail -1 "$dir/log.txt")"
  else
    timeout 150 python3 bench/gpu/serve_load.py "$url" "$long" 8 > "$dir/result.txt" 2> "$dir/err.txt" || note "servegpu: FAIL $(tail -1 "$dir/err.txt")"
    grep '^servegpu: ' "$dir/result.txt" >> "$summary"
    tail -1 "$dir/result.txt" > "$results/servegpu.json"
  fi
  kill -TERM $spid 2>/dev/null; wait $spid 2>/dev/null
  cp "$dir/log.txt" "$results/servegpu-log.txt" 2>/dev/null
fi
mark servegpu

if has hf; then
  lens=${HF_LENS:-"8192 32768"}; [[ $quick == 1 ]] && lens="8192"
  python3 bench/gpu/compare.py hf-model /tmp/m8b 2> "$out/hf-model.err" || note "hf-model: FAIL $(tail -1 "$out/hf-model.err")"
  for n in $lens; do
    python3 bench/gpu/compare.py hf-logits /tmp/m8b "$n" "$out/ids-$n.json" "$out/hf-$n.safetensors" 2> "$out/hf-$n.err" \
      || { note "transformers logits $n: FAIL $(tail -1 "$out/hf-$n.err")"; continue; }
    for g in $(printf '%s\n' 1 "$ngpu" | uniq); do
      for s in pass-kv pass-q; do
        [[ $g == 1 && $s == pass-q ]] && continue
        if "$bin" generate --device cuda --gpus "$g" --strategy "$s" --model /tmp/m8b --prompt-ids "$out/ids-$n.json" --max-new-tokens 0 --verbose \
            --dump-logits "$out/m8b-$n-$g-$s.safetensors" --json > "$out/m8b-$n-$g-$s.json" 2> "$out/m8b-$n-$g-$s.err"; then
          note "$(python3 bench/gpu/compare.py hf-compare "$out/hf-$n.safetensors" "$out/m8b-$n-$g-$s.safetensors" "8B-shape 2 layers $n tokens $g gpu $s") [$(grep -o 'cuDNN[^,]*calls\?[^,]*, decode kernel for [0-9]*, own kernel for [0-9]*' "$out/m8b-$n-$g-$s.err" | head -1)]"
        else
          note "8B-shape $n $g gpu $s: FAIL $(tail -1 "$out/m8b-$n-$g-$s.err")"
        fi
      done
    done
  done
fi
mark hf

if has launch; then
  OUT="$out/launch" bench/gpu/launch_check.sh checks > "$out/launch.txt" 2>&1
  sed -n '/==== launch summary ====/,$p' "$out/launch.txt" | tail -n +2 >> "$summary"
fi
mark launch

if has hfprefill; then
  python3 bench/gpu/hf_prefill.py 32768 131072 >> "$summary" 2> "$out/hf-prefill.err" || note "hf_prefill: FAIL $(tail -1 "$out/hf-prefill.err")"
fi
mark hfprefill

if has families; then
  fctx=${CONTEXTS:-32768,131072}; [[ $quick == 1 ]] && fctx="8192"
  "$bin" bench --config gemma3-12b --context "$fctx" --gpus 1 --strategy pass-kv --profile --json > "$results/bench-gemma3.json" 2> "$out/bench-gemma3.err" \
    || note "bench gemma3-12b: FAIL $(tail -1 "$out/bench-gemma3.err")"
  "$bin" bench-attention --context "$fctx" --heads 16 --kv-heads 8 --head-dim 256 --mask causal,decode --window 0,1024 --attention cudnn,kernel --json \
    > "$results/bench-attention-gemma3.json" 2> "$out/bench-attention-gemma3.err" || note "bench-attention gemma3: FAIL $(tail -1 "$out/bench-attention-gemma3.err")"
  bench/gpu/attention_table.py "$results/bench-attention-gemma3.json" >> "$summary"
  python3 bench/gpu/hf_prefill_gemma3.py ${fctx//,/ } >> "$summary" 2> "$out/hf-prefill-gemma3.err" || note "hf_prefill_gemma3: FAIL $(tail -1 "$out/hf-prefill-gemma3.err")"
  "$bin" bench --config gemma3-12b --context "${fctx##*,}" --one-rank-of 4 --strategy pass-kv --profile --json > "$results/bench-gemma3-share.json" 2> "$out/bench-gemma3-share.err" \
    || note "bench gemma3-12b one rank of 4: FAIL $(tail -1 "$out/bench-gemma3-share.err")"
fi
mark families

ctx=${CONTEXTS:-32768,131072}; [[ $quick == 1 ]] && ctx="8192"
# 1, 2 and all GPUs (the Hopper issue's 1/2/4); batch-8 decode on those of 2 or more (it does not fit on one).
gpus=1; [[ $ngpu -gt 2 ]] && gpus="$gpus,2"; [[ $ngpu -gt 1 ]] && gpus="$gpus,$ngpu"
gpus8=${gpus#1,}

if has bench; then
  "$bin" bench --config llama3-8b --context "$ctx" --gpus "$gpus" --strategy pass-kv --profile --json > "$results/bench-pass-kv.json" 2> "$out/bench-pass-kv.err" || note "bench pass-kv: FAIL $(tail -1 "$out/bench-pass-kv.err")"
  [[ $ngpu -gt 1 ]] && { "$bin" bench --config llama3-8b --context "$ctx" --gpus "$ngpu" --strategy pass-q --json > "$results/bench-pass-q.json" 2> "$out/bench-pass-q.err" || note "bench pass-q: FAIL $(tail -1 "$out/bench-pass-q.err")"; }
fi
mark bench

if has share; then
  # One GPU's share of a 2- and a 4-GPU run (of the N-GPU run on N GPUs), rank 0 alone with its peers echoed
  # (bench --one-rank-of): the time a ring of that many GPUs would take without its communication. Beside the bench
  # section's runs on the same machine, the difference is what the transfers and the ranks' waiting cost.
  shares=2,4; [[ $ngpu -gt 1 ]] && shares=$ngpu
  "$bin" bench --config llama3-8b --context "$ctx" --one-rank-of "$shares" --strategy pass-kv --profile --json > "$results/bench-share.json" 2> "$out/bench-share.err" \
    || note "bench one rank alone: FAIL $(tail -1 "$out/bench-share.err")"
fi
mark share

if has calibrate; then
  # The rates longctx plan and --strategy auto use, measured here (bench --calibrate): on one GPU, and on two with the
  # NVLink ring. The planner's 32K/128K prediction from them goes to the summary, beside the bench section's measurement.
  for g in 1 $([[ $ngpu -gt 1 ]] && echo 2); do
    link=nvlink; [[ $g == 1 ]] && link=27.5 # one GPU's file has no link between GPUs, and one GPU's plan uses none
    if "$bin" bench --config llama3-8b --gpus $g --calibrate "$results/calibration-${g}gpu.json" > "$out/calibrate-$g.txt" 2>&1; then
      note "calibration on $g GPU(s): $(tail -1 "$out/calibrate-$g.txt")"
      "$bin" plan --config llama3-8b --calibration "$results/calibration-${g}gpu.json" --gpus-per-node $g --nodes 1 --tensor-parallel 1 --link $link \
        --context 32768,131072 > "$out/plan-$g.txt" 2>&1 && tail -3 "$out/plan-$g.txt" | head -2 >> "$summary"
    else
      note "calibration on $g GPU(s): FAIL $(tail -1 "$out/calibrate-$g.txt")"
    fi
  done
fi
mark calibrate

if has bench || has decode; then
  # Decode on the distributed cache just under 128K (a 131072-token prompt leaves no position to decode into);
  # batch 8 needs 2+ H200s (~82 GB of KV each on 2).
  dctx=130000; [[ $quick == 1 ]] && dctx=8192
  # --profile: a second prefill and 16 steps with events around every operation, for the step's time split.
  "$bin" bench --config llama3-8b --context "$dctx" --gpus "$gpus" --strategy pass-kv --warmup 0 --decode-steps 16 --profile --json > "$results/bench-decode1.json" 2> "$out/bench-decode1.err" || note "decode batch 1: FAIL $(tail -1 "$out/bench-decode1.err")"
  [[ $ngpu -gt 1 ]] && { "$bin" bench --config llama3-8b --context "$dctx" --gpus "$gpus8" --strategy pass-kv --warmup 0 --decode-steps 16 --batch 8 --json > "$results/bench-decode8.json" 2> "$out/bench-decode8.err" || note "decode batch 8: FAIL $(tail -1 "$out/bench-decode8.err")"; }
fi
mark decode

if has approx && [[ $ngpu -gt 1 ]]; then
  # Star and APB beside exact pass-kv on the same GPUs, and Star at APB's anchor (block/4): the APB
  # issue's "faster than star at equal anchor length", at the longest context.
  "$bin" bench --config llama3-8b --context "$ctx" --gpus "$ngpu" --strategy pass-kv --json > "$results/bench-exact.json" 2> "$out/bench-exact.err" || note "bench exact: FAIL $(tail -1 "$out/bench-exact.err")"
  "$bin" bench --config llama3-8b --context "$ctx" --gpus "$ngpu" --strategy apb --json > "$results/bench-apb.json" 2> "$out/bench-apb.err" || note "bench apb: FAIL $(tail -1 "$out/bench-apb.err")"
  long=${ctx##*,}
  # The papers' equal blocks beside the default balanced ones (docs/APB.md, "Balanced blocks"), at the longest context.
  "$bin" bench --config llama3-8b --context "$long" --gpus "$ngpu" --strategy apb --even-blocks --json > "$results/bench-apb-even.json" 2> "$out/bench-apb-even.err" || note "bench apb even blocks: FAIL $(tail -1 "$out/bench-apb-even.err")"
  "$bin" bench --config llama3-8b --context "$long" --gpus "$ngpu" --strategy star --anchor-tokens $((long / ngpu / 4)) --json > "$results/bench-star-apb-anchor.json" 2> "$out/bench-star-apb-anchor.err" \
    || note "bench star at apb's anchor: FAIL $(tail -1 "$out/bench-star-apb-anchor.err")"
  # Shorter lengths, block/16 and block/32 (2,048 and 1,024 at 128K on 4): the APB issue's 2x over exact needs them
  # (docs/APB.md, "Shorter lengths": retrieval within 2 points of dense there too), and Star at the same anchor.
  "$bin" bench --config llama3-8b --context "$long" --gpus "$ngpu" --strategy apb --anchor-tokens $((long / ngpu / 16)) --passing-tokens $((long / ngpu / 32)) --json \
    > "$results/bench-apb-short.json" 2> "$out/bench-apb-short.err" || note "bench apb short lengths: FAIL $(tail -1 "$out/bench-apb-short.err")"
  "$bin" bench --config llama3-8b --context "$long" --gpus "$ngpu" --strategy star --anchor-tokens $((long / ngpu / 16)) --json > "$results/bench-star-short.json" 2> "$out/bench-star-short.err" \
    || note "bench star at the short anchor: FAIL $(tail -1 "$out/bench-star-short.err")"
  "$bin" bench --config llama3-8b --context "$ctx" --gpus "$ngpu" --strategy star --json > "$results/bench-star.json" 2> "$out/bench-star.err" || note "bench star: FAIL $(tail -1 "$out/bench-star.err")"
fi
mark approx

if has tp && [[ $ngpu -gt 1 ]]; then
  # The same GPUs as context ranks only (bench section), as context x 2 tensor ranks, and as one tensor group:
  # TP all-reduces twice per layer where CP passes KV once, so CP should win within a node on long prompts.
  for t in $(printf '%s\n' 2 "$ngpu" | uniq); do
    "$bin" bench --config llama3-8b --context "$ctx" --gpus "$ngpu" --tensor-parallel $t --strategy pass-kv --json > "$results/bench-tp$t.json" 2> "$out/bench-tp$t.err" || note "bench tp $t: FAIL $(tail -1 "$out/bench-tp$t.err")"
  done
fi
mark tp

if has kernels; then
  # Where rank 0's time outside GEMMs and attention goes, kernel by kernel (cuBLASLt and cuDNN count as "other"),
  # for the N-GPU prefill at the longest context: the merges, norms and transfers a ring adds to one GPU's work.
  long=${ctx##*,}
  LONGCTX_PROFILE_BY_KERNEL=1 "$bin" bench --config llama3-8b --context "$long" --gpus "$ngpu" --strategy pass-kv --profile --json \
    > "$results/kernels-$ngpu.json" 2> "$out/kernels.err" || note "kernels: FAIL $(tail -1 "$out/kernels.err")"
  python3 - "$results/kernels-$ngpu.json" >> "$summary" <<'PY'
import json, sys
for p in json.load(open(sys.argv[1]))["points"]:
    s = p.get("time_split_ms") or {}
    print(f"by kernel, {p['ranks']} gpu {p['context']} tokens, rank 0 (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(s.items(), key=lambda kv: -kv[1])[:14]))
PY
fi
mark kernels

if has million && [[ $ngpu -ge 4 ]]; then
  # The issue's 1M-token prefill (KV ~32 GB per GPU on 4): one timed prefill after the usual 1K warm-up, no
  # warm-up at 1M (it would double the call); cuDNN plans for its block shapes are built inside the timing.
  "$bin" bench --config llama3-8b-1m --context 1048576 --gpus "$ngpu" --strategy pass-kv --warmup 0 --json > "$results/bench-million.json" 2> "$out/bench-million.err" || note "bench 1M: FAIL $(tail -1 "$out/bench-million.err")"
fi
mark million

if has copyring && [[ $ngpu -gt 1 ]]; then
  # The N-GPU pass-kv with its ring blocks passed by the GPUs' copy engines instead of NCCL's kernels, beside the
  # bench section's NCCL run (A/B). Never run on more than one GPU before: bounded, so a hang costs 4 minutes, not the call.
  LONGCTX_RING_TRANSFERS=copy timeout 240 "$bin" bench --config llama3-8b --context "$ctx" --gpus "$ngpu" --strategy pass-kv --profile --json > "$results/bench-pass-kv-copy.json" 2> "$out/bench-pass-kv-copy.err" \
    || note "bench pass-kv copy-engine ring: FAIL (exit $?) $(tail -1 "$out/bench-pass-kv-copy.err")"
fi
mark copyring

if has bench || has share || has decode || has approx || has tp || has million || has copyring || has families; then
  python3 - "$results" >> "$summary" <<'PY'
import json, sys, glob
for f in sorted(glob.glob(sys.argv[1] + "/bench-*.json")):
    if "attention" in f: continue
    try: d = json.load(open(f))
    except Exception: print(f"{f}: no result"); continue
    keys = ("gemm", "attention", "communication", "kernels", "copy", "other")
    for p in d["points"]:
        s = p.get("time_split_ms") or {}
        split = " split gemm/attn/comm/kernels/copy/other ms " + "/".join(f"{s.get(k, 0):.0f}" for k in keys) if s else ""
        extra = f" decode batch {p.get('batch', 1)}: {p.get('decode_ms_per_step')} ms/step, {p['decode_ms_per_token']} ms/token" if "decode_ms_per_token" in p else ""
        if ds := p.get("decode_split_ms_per_step"): extra += " (profiled step " + "/".join(f"{ds.get(k, 0):.2f}" for k in keys) + " ms)"
        if "logits_relative_error" in p: extra += f" logits err vs exact {p['logits_relative_error']} top-1 {'agrees' if p['top1_agrees'] else 'differs'}"
        if "block_tokens" in p: extra += " blocks " + "/".join(str(b) for b in p["block_tokens"])
        if "projection" in p:
            ranks = f"rank {p['timed_rank']} of {p['ranks']} alone (a projection without communication),"
        else:
            ranks = f"{p['ranks']}x{p['tensor_parallel']}" if p.get('tensor_parallel', 1) > 1 else p['ranks']
        rate = f"{p['model_tflops']:.0f} TFLOP/s, MFU {p['mfu']}, " if p.get("model_tflops") is not None else ""
        eff = f"eff <= {p['parallel_efficiency_at_most']}" if "projection" in p else f"eff {p['parallel_efficiency']}"
        print(f"longctx {f.split('bench-')[-1][:-5]}: {ranks} gpu {p['context']} tokens {p['strategy']}: TTFT {p['ttft_ms']:.0f} ms, {rate}{eff}{split}{extra} [{d.get('attention', '')}]")
PY

fi
mark summary

if has peer; then
  if [[ $quick == 1 ]]; then
    [[ $ngpu -gt 1 ]] && for b in cudnn flash; do
      timeout 150 torchrun --standalone --nproc-per-node "$ngpu" bench/gpu/torch_cp.py --context 8192 --layers 2 --backend $b --budget-s 120 > "$out/torch-cp-$b.txt" 2>&1
      note "$(grep -E '^torch context_parallel|OOM|FAIL|Timeout' "$out/torch-cp-$b.txt" | tr '\n' ' ' | cut -c1-600) ($b)"
    done
  else
    [[ $ngpu -gt 1 ]] && { timeout 260 torchrun --standalone --nproc-per-node "$ngpu" bench/gpu/torch_cp.py --context 32768,131072 --layers 32 --backend cudnn --budget-s 240 > "$out/torch-cp.txt" 2>&1
      grep -E '^torch context_parallel|OOM|FAIL|Timeout' "$out/torch-cp.txt" >> "$summary"; }
  fi
fi
mark peer

if has retrieval; then
  if [[ $quick == 1 ]]; then
    python3 bench/retrieval/train.py --out /tmp/retrieval-smoke --smoke > "$out/train-smoke.txt" 2>&1; note "retrieval smoke: $(tail -2 "$out/train-smoke.txt" | tr '\n' ' ')"
  else
    # Four candidates at once (learning rate : layers), two per GPU (the small model leaves the GPU idle
    # between Python's batches): the one with the best accuracy at 16K-64K is evaluated. Training is a race
    # against the clock; four tries cut the risk that none leaves the plateau in time.
    # Candidates are lr:layers[:seed] (seed: the candidate's index). RETRIEVAL_MODEL=DIR evaluates a model
    # trained before (brought back by KEEP_MODEL=1, which copies the chosen one into $OUT) instead of training.
    # A packed model (tar -cJf M.tar.xz retrieval-model) is unpacked: packed it fits beside .publish in what a call carries.
    if [[ -n ${RETRIEVAL_MODEL:-} ]]; then
      rm -rf /tmp/retrieval-model
      if [[ $RETRIEVAL_MODEL == *.tar.xz ]]; then tar -C /tmp -xJf "$RETRIEVAL_MODEL"; else cp -r "$RETRIEVAL_MODEL" /tmp/retrieval-model; fi
      note "retrieval model: $RETRIEVAL_MODEL (trained before)"
    else
      candidates=${CANDIDATES:-"1e-3:2 2e-3:2 1e-3:4 2e-3:4"}
      i=0
      for c in $candidates; do
        IFS=: read -r lr layers seed <<< "$c"
        CUDA_VISIBLE_DEVICES=$((i % ngpu)) python3 bench/retrieval/train.py --out "/tmp/retrieval-$c" --lr "$lr" --layers "$layers" --seed "${seed:-$i}" \
          --minutes "${TRAIN_MINUTES:-4}" > "$out/train-$c.txt" 2>&1 &
        i=$((i + 1))
      done
      wait
      cp "$out"/train-*.txt "$results"/  # comes back even if the evaluation below runs past the call's limit
      best=""; best_acc=-1
      for c in $candidates; do
        { grep "\] step" "$out/train-$c.txt" | tail -2; grep -E "on to|accuracy at|saved|export check|done after|time is up|Error" "$out/train-$c.txt"; } | sed "s/^/lr:layers[:seed] $c: /" >> "$summary"
        acc=$(grep -oP "accuracy at \d+ tokens \(contiguous positions\): \K[0-9.]+" "$out/train-$c.txt" | awk '{s += $1} END {print (NR ? s / NR : -1)}')
        if awk "BEGIN {exit !($acc > $best_acc)}"; then best=$c; best_acc=$acc; fi
      done
      [[ -n $best ]] || { note "retrieval training: FAIL $(tail -1 "$out"/train-*.txt | tr '\n' ' ')"; best=missing; }
      note "retrieval model: lr:layers[:seed] $best (mean accuracy at 16K-64K $best_acc)"
      rm -rf /tmp/retrieval-model; cp -r "/tmp/retrieval-$best" /tmp/retrieval-model
      [[ ${KEEP_MODEL:-0} == 1 ]] && cp -r /tmp/retrieval-model "$results/retrieval-model"
    fi
    python3 bench/retrieval/prompts.py --out /tmp/retrieval-prompts.jsonl --contexts "${RETRIEVAL_CONTEXTS:-16384,32768,65536}" --per-context "${PER_CONTEXT:-24}" \
      --seed "${PROMPT_SEED:-1234}" >> "$summary"
    "$bin" eval-retrieval --model /tmp/retrieval-model --prompts /tmp/retrieval-prompts.jsonl --strategies "${RETRIEVAL_STRATEGIES:-dense,pass-kv,star,apb}" \
      --ranks "${RETRIEVAL_RANKS:-2,4,8}" \
      --device cuda --gpus "$ngpu" > "$results/retrieval.txt" 2> "$results/retrieval.err" || note "eval-retrieval: FAIL $(tail -1 "$results/retrieval.err")"
    cat "$results/retrieval.txt" >> "$summary"
    # Issue #30: dense retrieval with each FP8 setting of RETRIEVAL_FP8 (';'-separated option sets) on the same prompts,
    # beside the bf16 dense above.
    IFS=';' read -ra fp8_settings <<< "${RETRIEVAL_FP8:-}"
    for setting in "${fp8_settings[@]}"; do
      tag=$(echo "$setting" | tr -c 'a-z0-9' '-' | tr -s '-')
      "$bin" eval-retrieval --model /tmp/retrieval-model --prompts /tmp/retrieval-prompts.jsonl --strategies dense --device cuda --gpus 1 $setting \
        > "$results/retrieval-fp8$tag.txt" 2> "$results/retrieval-fp8$tag.err" || note "eval-retrieval $setting: FAIL $(tail -1 "$results/retrieval-fp8$tag.err")"
      { echo "dense with $setting:"; cat "$results/retrieval-fp8$tag.txt"; } >> "$summary"
    done
  fi
fi
mark retrieval

if has fp8; then
  # Each run is bounded, and a failure is noted and the next one runs. The 70B shape needs ~75 GB of FP8 weights:
  # on a GPU under 100 GB its KV cache is FP8 too.
  f8() { local name=$1 limit=$2; shift 2
    timeout "$limit" "$bin" "$@" > "$results/fp8-$name.json" 2> "$out/fp8-$name.err" || note "fp8 $name: FAIL ($?) $(tail -1 "$out/fp8-$name.err" | cut -c1-300)"; mark "fp8 $name"; }
  e8=(--config llama3-8b --gpus 1 --strategy pass-kv --json)
  f8 gemm 60 bench-gemm --rows 131072 --json
  f8 prefill-bf16 60 bench "${e8[@]}" --context 32768,131072
  f8 prefill-w 75 bench "${e8[@]}" --context 32768,131072 --quantization fp8 --error-vs-bf16
  f8 prefill-w-attn 75 bench "${e8[@]}" --context 32768,131072 --quantization fp8 --attention-dtype fp8 --error-vs-bf16
  f8 kv-error 45 bench "${e8[@]}" --context 32768 --kv-cache-dtype fp8 --warmup 0 --error-vs-bf16
  f8 decode1k-bf16 30 bench "${e8[@]}" --context 1024 --decode-steps 64
  f8 decode1k-w 30 bench "${e8[@]}" --context 1024 --decode-steps 64 --quantization fp8
  f8 decode130k-w-kv 60 bench "${e8[@]}" --context 130000 --warmup 0 --decode-steps 16 --quantization fp8 --kv-cache-dtype fp8
  f8 share4-w-kv 45 bench --config llama3-8b --context 131072 --one-rank-of 4 --strategy pass-kv --quantization fp8 --kv-cache-dtype fp8 --json
  kv70=(); (( $(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits -i 0) < 100000 )) && kv70=(--kv-cache-dtype fp8)
  f8 70b-w 120 bench --config llama3-70b --context 32768 --gpus 1 --strategy pass-kv --quantization fp8 "${kv70[@]}" --json
  python3 bench/gpu/fp8_table.py "$results" >> "$summary"
fi
mark fp8
# Last: the fixture checks are quick and were run in every earlier round; a long round cut at the limit loses them first.
if has fixture; then
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
  # More ranks than GPUs (shared GPUs, device copies): exact, for accuracy studies.
  for s in pass-kv pass-q; do
    "$bin" generate --device cuda --gpus 1 --ranks 4 --strategy $s --model "$fx" --prompt-ids "$out/ids.json" --temperature 0 --max-new-tokens 16 \
      --dump-logits "$out/sh-$s.safetensors" --dump-last 4 --json > "$out/sh-$s.json" 2> "$out/sh-$s.err" \
      && note "$(python3 bench/gpu/compare.py fixture "$fx" "$out/sh-$s.safetensors" "$out/sh-$s.json" "tiny-llama3 4 ranks on 1 gpu $s")" \
      || note "tiny-llama3 4 ranks on 1 gpu $s: FAIL $(tail -1 "$out/sh-$s.err")"
  done
fi
mark fixture

echo; echo "==== summary ===="; cat "$summary"
