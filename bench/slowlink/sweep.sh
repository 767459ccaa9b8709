#!/usr/bin/env bash
# The pass-KV / pass-Q heuristic on slow links, measured (docs/PERFORMANCE.md, "The heuristic on slow links").
#
# Two CPU ranks as processes (`bench` under the RANK/WORLD_SIZE/MASTER_ADDR rendezvous), each pinned to one core in
# its own network namespace; the namespaces are joined by one veth pair whose two ends are rate-limited with tc (tbf)
# to a 1, 3 and 10 GB/s-equivalent link: a GPU link's rate scaled by the two ranks' attention rate (calibrated over the
# unshaped pair first) against a GPU's and by the context lengths (see scale.py). tc netem is not in every kernel (this
# machine's has tbf, htb and pfifo only), so the link's rate is shaped and its latency is veth's own.
# For each link: a calibration over the shaped link (bench --calibrate), then
# partial prefills of a CONTEXT-token prompt at every miss rate with pass-kv, pass-q and auto (which reads that
# calibration), interleaved; then the planner's prediction of the same points (plan --calibration ... --link calibrated).
# bench/slowlink/report.py turns OUT into the table and plot of the doc.
#
# Needs root, ip, tc (tbf), taskset, python3 and a Release build (dotnet build src/LongCtx.Cli -c Release). It waits
# until the machine is quiet (1-minute load below LOAD_MAX, at most WAIT_MINUTES; then it measures at the load there is,
# which the log keeps), every run is under `timeout`, the whole sweep stops itself after MAX_MINUTES, and its namespaces
# (lcx<pid>-0/1: the only addresses it creates, 10.231.7.1-2) are removed on any exit.
#   [LONGCTX_DLL=path] [CONTEXT=4096] [MISS_RATES=0.01,...] [LINKS="1 3 10"] [LOAD_MAX=2] [WAIT_MINUTES=30] [MAX_MINUTES=15] bench/slowlink/sweep.sh [OUT]
# About 10 minutes with the defaults on two cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-bench/slowlink/results}
context=${CONTEXT:-4096}
miss_rates=${MISS_RATES:-0.01,0.02,0.03,0.05,0.075,0.1,0.15,0.2,0.3,0.5}
links=${LINKS:-1 3 10}
load_max=${LOAD_MAX:-2}
wait_minutes=${WAIT_MINUTES:-30}
max_minutes=${MAX_MINUTES:-15}
run_timeout=${RUN_TIMEOUT:-600}
dll=${LONGCTX_DLL:-src/LongCtx.Cli/bin/Release/net10.0/longctx.dll}
model=bench/slowlink/model

[[ $(id -u) == 0 ]] || { echo "error: run as root (network namespaces and tc need it)" >&2; exit 1; }
for c in ip tc taskset timeout python3 dotnet; do command -v $c > /dev/null || { echo "error: $c is missing" >&2; exit 1; }; done
[[ -f $dll ]] || { echo "error: $dll is missing: dotnet build src/LongCtx.Cli -c Release" >&2; exit 1; }
mkdir -p "$out"
ns0=lcx$$-0 ns1=lcx$$-1 veth0=lcx$$a veth1=lcx$$b addr0=10.231.7.1 addr1=10.231.7.2
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done
  ip netns del "$ns0" 2> /dev/null || true # takes the veth pair with it
  ip netns del "$ns1" 2> /dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
load() { cut -d' ' -f1 /proc/loadavg; }
log() { echo "[$(date +%T) load $(load)] $*" | tee -a "$out/log.txt"; }

# Waits until the 1-minute load is below $1, at most $2 minutes; then measures anyway (the log keeps the load).
wait_quiet() {
  local until=$((SECONDS + $2 * 60))
  while python3 -c "import sys; sys.exit(0 if float('$(load)') > $1 else 1)"; do
    (( SECONDS < until )) || { log "the load stayed above $1 for $2 minutes: measuring at this load"; return; }
    sleep 15
  done
}

# bench on the two ranks, rank 0's stdout to $1: every run bounded by `timeout`, and by what is left of the sweep.
pair() {
  local result=$1; shift
  local left=$((deadline - SECONDS)); (( left > 0 )) || { log "stopped: the sweep's $max_minutes minutes are up"; exit 3; }
  local limit=$(( left < run_timeout ? left : run_timeout )) port=$((29500 + RANDOM % 400)) r
  pids=()
  for r in 0 1; do
    local ns=$ns0; [[ $r == 1 ]] && ns=$ns1
    ip netns exec "$ns" env RANK=$r WORLD_SIZE=2 LOCAL_RANK=0 MASTER_ADDR=$addr0 MASTER_PORT=$port LONGCTX_RENDEZVOUS_TIMEOUT=60 \
      timeout "$limit" taskset -c $r dotnet "$dll" bench --device cpu --model "$model" "$@" \
      > "$([[ $r == 0 ]] && echo "$result" || echo /dev/null)" 2> "$out/rank$r.err" &
    pids+=($!)
  done
  local status=0
  for p in "${pids[@]}"; do wait "$p" || status=$?; done
  pids=()
  (( status == 0 )) || { log "a rank failed (status $status): $(tail -1 "$out/rank0.err") / $(tail -1 "$out/rank1.err")"; exit 4; }
}

wait_quiet "$load_max" "$wait_minutes"
deadline=$((SECONDS + max_minutes * 60))
log "start: context $context, miss rates $miss_rates, links $links GB/s-equivalent; $(uptime)"

ip netns add "$ns0"; ip netns add "$ns1"
ip link add "$veth0" type veth peer name "$veth1"
ip link set "$veth0" netns "$ns0"; ip link set "$veth1" netns "$ns1"
ip -n "$ns0" addr add $addr0/30 dev "$veth0"; ip -n "$ns1" addr add $addr1/30 dev "$veth1"
for n in 0 1; do
  ns=$ns0 dev=$veth0; [[ $n == 1 ]] && ns=$ns1 dev=$veth1
  # Segments no larger than the token bucket: tbf shapes a big GSO segment as one burst.
  ip -n "$ns" link set "$dev" gso_max_size 16384 2> /dev/null || true
  ip -n "$ns" link set "$dev" up; ip -n "$ns" link set lo up
done
# The two ranks' own rates over the unshaped pair, as they run in the sweep: what the link rates are scaled by.
pair "$out/cpu.txt" --calibrate "$out/cpu.json"

for g in $links; do
  bytes=$(python3 bench/slowlink/scale.py "$out/cpu.json" "$g" "$context")
  bits=$(python3 -c "print(int($bytes * 8))")
  for n in 0 1; do
    ns=$ns0 dev=$veth0; [[ $n == 1 ]] && ns=$ns1 dev=$veth1
    # A deep queue (4 MB) so that TCP is shaped, not dropped; a small bucket so that bursts stay short.
    ip netns exec "$ns" tc qdisc replace dev "$dev" root tbf rate "${bits}bit" burst 32kb limit 4mb
  done
  # The previous link's two ranks still weigh on the 1-minute load (about 2): wait a little for the rest of the machine.
  wait_quiet "$(python3 -c "print($load_max + 2)")" 1
  log "link ${g} GB/s-equivalent: $bytes bytes/s; calibrating over it"
  pair "$out/cal-$g.txt" --calibrate "$out/cal-$g.json"
  log "link ${g}: sweep"
  pair "$out/sweep-$g.json" --context "$context" --miss-rate "$miss_rates" --strategy pass-kv,pass-q,auto --calibration "$out/cal-$g.json" --warmup 0 --json
  log "link ${g}: done"
  # The planner's curve: 100 miss rates from 0.5% to 100%, evenly on a log scale.
  hits=$(python3 -c "print(','.join(f'{1 - 0.005 * 200 ** (i / 99):.6f}' for i in range(99)) + ',0')")
  dotnet "$dll" plan --model "$model" --calibration "$out/cal-$g.json" --gpus-per-node 1 --nodes 2 --link calibrated \
    --context "$context" --hit-rate "$hits" --json > "$out/plan-$g.json"
done
log "finished; $(uptime)"
