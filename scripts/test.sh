#!/usr/bin/env bash
# The test command: fetches the tokenizers some tests need, then runs every test (CPU only).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-tokenizers.sh || echo "warning: tokenizers not fetched; the tests that need them will say they were skipped"
dotnet test LongCtx.slnx -c Release --logger "console;verbosity=normal" "$@"
