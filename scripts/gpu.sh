#!/usr/bin/env bash
# The GPU round in one script. Here (with the .NET SDK): publishes longctx self-contained and trimmed for
# linux-x64 into .publish/linux-x64. On the GPU machine (no .NET; carry .publish): runs bench/gpu/run.sh —
# GPU checks, benchmarks and the PyTorch peer — and prints a short table last.
#   scripts/gpu.sh publish        then, on the GPU machine:   scripts/gpu.sh run [smoke|checks|ours|others|full|retrieval]
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  publish)
    dotnet publish src/LongCtx.Cli -c Release -r linux-x64 --self-contained -p:PublishTrimmed=true -o .publish/linux-x64 -v quiet -nologo
    du -sh .publish/linux-x64 ;;
  run)
    shift; exec bench/gpu/run.sh "$@" ;;
  *)
    echo "usage: scripts/gpu.sh publish | run [smoke|checks|ours|others|full|retrieval]" >&2; exit 2 ;;
esac
