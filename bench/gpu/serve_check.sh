#!/usr/bin/env bash
# bench/gpu/serve_check.sh BIN FIXTURE WORKDIR: `longctx serve` on the fixture (with the Llama 3 tokenizer that
# scripts/gpu.sh publish packs) on GPU 0, then one completion with logprobs and one streamed chat; prints one
# summary line, and fails when the server does not start or a reply is malformed. The server's log stays in WORKDIR/log.txt.
set -uo pipefail
bin=$1 fx=$2 dir=$3
rm -rf "$dir" && mkdir -p "$dir/model"
cp "$fx/config.json" "$fx/model.safetensors" "$dir/model/"
tar -xJf .publish/tokenizer-llama3.tar.xz -C "$dir/model" || { echo "serve: FAIL no packed tokenizer (.publish/tokenizer-llama3.tar.xz)"; exit 1; }
"$bin" serve --model "$dir/model" --device "${DEVICE:-cuda}" --port 0 > "$dir/log.txt" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
url=""
for _ in $(seq 1 90); do
  url=$(grep -oP 'listening on \K\S+' "$dir/log.txt" | head -1) && [[ -n $url ]] && break
  kill -0 $pid 2>/dev/null || break
  sleep 1
done
[[ -n $url ]] || { echo "serve: FAIL did not start: $(tail -1 "$dir/log.txt")"; exit 1; }
python3 - "$url" <<'PY'
import json, sys, time, urllib.request
url = sys.argv[1].rstrip("/")
def post(path, body):
    req = urllib.request.Request(url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.read().decode()
model = json.loads(urllib.request.urlopen(url + "/v1/models", timeout=30).read())["data"][0]["id"]
t = time.time()
c = json.loads(post("/v1/completions", {"model": model, "prompt": "The capital of France is", "max_tokens": 8, "temperature": 0, "logprobs": 2}))
ms = (time.time() - t) * 1e3
choice = c["choices"][0]
lp = choice["logprobs"]["token_logprobs"]
assert len(lp) == c["usage"]["completion_tokens"] > 0 and all(v <= 0 for v in lp), f"completion logprobs malformed: {choice}"
stream = post("/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8, "temperature": 0, "stream": True})
events = [l[6:] for l in stream.splitlines() if l.startswith("data: ")]
assert events and events[-1] == "[DONE]", f"chat stream did not end with [DONE]: {stream[-300:]}"
chunks = [json.loads(e) for e in events[:-1]]
text = "".join(ch["choices"][0]["delta"].get("content") or "" for ch in chunks if ch.get("choices"))
print(f"serve: PASS completion of {len(lp)} tokens with logprobs in {ms:.0f} ms (first request), streamed chat of {len(chunks)} chunks ({len(text)} chars)")
PY
