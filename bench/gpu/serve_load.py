#!/usr/bin/env python3
"""bench/gpu/serve_load.py URL [LONG_TOKENS] [STREAMS]: against a running `longctx serve` (8B shape), the time per output
token of STREAMS streaming short requests without a long prompt, then while a LONG_TOKENS-token request prefills beside
them (chunked prefill: each step decodes the streams and prefills a chunk of the long prompt). Prints one line:
  servegpu: 8 streams TPOT alone mean 14.2 ms p50 13.9 | during the 131071-token prefill mean 612 ms p50 540 max 1210 over 23 tokens | long TTFT 14.1 s (alone 12.9 s)
and the same figures as JSON on the next line. Standard library only."""
import json, statistics, sys, threading, time, urllib.request
from http.client import HTTPConnection
from urllib.parse import urlparse

url = sys.argv[1].rstrip("/")
long_tokens = int(sys.argv[2]) if len(sys.argv) > 2 else 131071
streams = int(sys.argv[3]) if len(sys.argv) > 3 else 8
target = urlparse(url)

def post(body, timeout=600):
    req = urllib.request.Request(url + "/v1/completions", json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())

class Stream(threading.Thread):
    """A streaming client: the arrival time of each chunk with text; starts over if the model ends its reply."""
    def __init__(self, i):
        super().__init__(daemon=True)
        self.i, self.times, self.starts, self.stop = i, [], [], False
    def run(self):
        while not self.stop:
            conn = HTTPConnection(target.hostname, target.port, timeout=600)
            body = {"prompt": [128000] + [1000 + 37 * self.i + k for k in range(100)], "max_tokens": 4000, "temperature": 0, "stream": True}
            conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
            resp = conn.getresponse()
            self.starts.append(len(self.times))
            while not self.stop:
                line = resp.readline()
                if not line or line.startswith(b"data: [DONE]"): break
                if line.startswith(b"data: {"): self.times.append(time.monotonic())
            conn.close()

def gaps(clients, start, end):
    """Gaps between consecutive chunks of each stream that overlap [start, end], never across a restart."""
    out = []
    for c in clients:
        restarts = set(c.starts)
        for k in range(1, len(c.times)):
            if k in restarts: continue
            a, b = c.times[k - 1], c.times[k]
            if b >= start and a <= end: out.append(b - a)
    return out

def figures(g):
    g = sorted(g)
    return {"mean_ms": 1e3 * statistics.fmean(g), "p50_ms": 1e3 * statistics.median(g), "max_ms": 1e3 * g[-1], "tokens": len(g)} if g else None

long_prompt = {"prompt": [128000] + [(7919 * k) % 120000 + 1000 for k in range(long_tokens - 1)], "max_tokens": 1, "temperature": 0}
post({"prompt": [128000, 791], "max_tokens": 4})  # first kernels
t = time.monotonic(); post(long_prompt); first_long = time.monotonic() - t  # builds the cuDNN plans of every chunk's shape
t = time.monotonic(); post(long_prompt); long_alone = time.monotonic() - t

clients = [Stream(i) for i in range(streams)]
for c in clients: c.start()
while min(len(c.times) for c in clients) < 20: time.sleep(0.05)
t0 = time.monotonic(); time.sleep(5); t1 = time.monotonic()
alone = figures(gaps(clients, t0, t1))
t = time.monotonic(); post(long_prompt); t2 = time.monotonic()
during = figures(gaps(clients, t, t2))
for c in clients: c.stop = True
result = {"streams": streams, "long_tokens": long_tokens, "alone": alone, "during": during, "long_ttft_s": t2 - t, "long_alone_s": long_alone, "long_first_s": first_long}
print(f"servegpu: {streams} streams TPOT alone mean {alone['mean_ms']:.1f} ms p50 {alone['p50_ms']:.1f} | during the {long_tokens}-token prefill "
      f"mean {during['mean_ms']:.0f} ms p50 {during['p50_ms']:.0f} max {during['max_ms']:.0f} over {during['tokens']} tokens | "
      f"long TTFT {t2 - t:.1f} s (alone {long_alone:.1f} s, first {first_long:.1f} s)")
print(json.dumps(result))
