#!/usr/bin/env python3
"""One summary line per point of a `longctx bench-attention --json` file: block, implementation, cuDNN call plan, TFLOP/s
(for the decode mask, the rate K and V are read at)."""
import json
import sys

try:
    d = json.load(open(sys.argv[1]))
except Exception as e:  # a failed run leaves an empty or partial file; the caller noted the failure
    print(f"bench-attention: no result ({e})")
    sys.exit()
for p in d.get("points", []):
    err = f" O err {p['output_relative_error']:.2e}" if p.get("output_relative_error") is not None else ""
    note = f" ({p['note']})" if p.get("note") else ""
    rate = f"{p['kv_tb_per_s']} TB/s of K and V" if p.get("kv_tb_per_s") is not None else f"{p['tflops']} TFLOP/s"
    window = f" window {p['window']}" if p.get("window") else ""
    print(f"attention {p['mask']}{window} {p['query_rows']}x{p['key_rows']} {p['attention']} [{p.get('cudnn_calls') or ''}]: {p['ms']} ms, {rate}{err}{note}")
