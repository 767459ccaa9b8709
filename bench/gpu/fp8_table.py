"""The fp8 section's compact table (bench/gpu/run.sh): the FP8 GEMMs against bf16 at 128K rows, then every prefill and
decode run with its number formats, TTFT, model TFLOP/s, decode ms per token and logits error against bf16. Reads
fp8-*.json in the folder given; a run that left no JSON is listed as missing.
    python3 bench/gpu/fp8_table.py RESULTS_DIR
"""
import glob
import json
import os
import sys

folder = sys.argv[1]
print("==== fp8 (issue #30) ====")


def load(name):
    try:
        with open(os.path.join(folder, f"fp8-{name}.json")) as f:
            return json.load(f)
    except Exception:
        return None


gemm = load("gemm")
if gemm is None:
    print("gemm: missing")
else:
    kinds = ["bf16", "fp8_rows", "fp8_rows_fast_accumulation", "fp8_blocks", "fp8_blocks_fast_accumulation"]
    heads = ["bf16", "fp8 rows", "rows fast", "fp8 blocks", "blocks fast"]
    print(f"GEMMs at {gemm['rows']} rows on {gemm['device']} (TFLOP/s; fast: cuBLASLt's fast accumulation; quantisation ms apart)")
    print(f"{'shape':<22}" + "".join(f"{h:>12}" for h in heads) + f"{'quant rows/groups ms':>22}")
    totals = {k: [0.0, 0.0] for k in kinds}
    for p in gemm["points"]:
        flops = 2.0 * p["rows"] * p["k"] * p["n"]
        cells = []
        for k in kinds:
            if f"{k}_ms" in p:
                totals[k][0] += flops
                totals[k][1] += p[f"{k}_ms"]
                cells.append(f"{p[f'{k}_tflops']:>12.0f}")
            else:
                cells.append(f"{'failed' if f'{k}_error' in p else '-':>12}")
        q = f"{p.get('quantize_rows_ms', float('nan')):.2f}/{p.get('quantize_groups_ms', float('nan')):.2f}"
        print(f"{p['shape'] + ' ' + str(p['k']) + 'x' + str(p['n']):<22}" + "".join(cells) + f"{q:>22}")
    print(f"{'8B layer (all four)':<22}" + "".join(f"{(f / (ms / 1e3) / 1e12 if ms else float('nan')):>12.0f}" for f, ms in totals.values()))
    for p in gemm["points"]:
        for k in kinds:
            if f"{k}_error" in p:
                print(f"  {p['shape']} {k}: {p[f'{k}_error'][:200]}")

print(f"{'run':<18}{'ctx':>8}{'TTFT s':>9}{'TFLOP/s':>9}{'ms/token':>10}{'err vs bf16':>13}{'top-1':>7}  dtypes / attention")
for path in sorted(glob.glob(os.path.join(folder, "fp8-*.json"))):
    name = os.path.basename(path)[4:-5]
    if name == "gemm":
        continue
    d = load(name)
    if d is None:
        print(f"{name:<18} missing")
        continue
    dt = d.get("dtypes", {})
    what = f"w {dt.get('weights', '?')}; kv {dt.get('kv_cache', '?')}; attn {dt.get('attention', '?')}"
    for p in d["points"]:
        err = p.get("logits_relative_error")
        top1 = p.get("top1_agrees")
        ranks = f" (rank {p['timed_rank']} of {p['ranks']} alone: a projection)" if "projection" in p else ""
        print(f"{name:<18}{p['context']:>8}{p['ttft_ms'] / 1e3:>9.3f}{p['model_tflops']:>9.0f}"
              f"{p.get('decode_ms_per_token', float('nan')):>10.2f}{(f'{err:.2e}' if err is not None else ''):>13}"
              f"{('' if top1 is None else 'yes' if top1 else 'no'):>7}  {what}{ranks}")
    print(f"{'':<18}{d.get('attention') or ''}")
