#!/usr/bin/env bash
# Regenerates the expected outputs of bench/retrieval/prompts.py that tests/LongCtx.Tests/Cli/RetrievalTaskTests.cs
# compares `longctx make-retrieval-prompts` with (CI has no guaranteed python3). Needs python3 (standard library only).
set -euo pipefail
cd "$(dirname "$0")"
py=../../../bench/retrieval/prompts.py
python3 "$py" --out prompts-512-2048.jsonl --contexts 512,2048 --per-context 3 > /dev/null
# Longer prompts, by digest: 16K and 64K documents draw their keys by CPython's other sample() algorithm.
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
: > prompts-sha256.txt
for args in "1234 4096,8192 4" "7 16384,65536 2" "4321 16384,32768,65536 24"; do
  read -r seed contexts per <<< "$args"
  python3 "$py" --out "$tmp" --contexts "$contexts" --per-context "$per" --seed "$seed" > /dev/null
  echo "$(sha256sum < "$tmp" | cut -d' ' -f1) $seed $contexts $per" >> prompts-sha256.txt
done
