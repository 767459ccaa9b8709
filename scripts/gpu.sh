#!/usr/bin/env bash
# The GPU round in one script. Here (with the .NET SDK): publishes longctx self-contained and trimmed for
# linux-x64 and the runner of the xunit GPU tests, each packed (.publish/linux-x64.tar.xz, .publish/gpu-tests.tar.xz). On the GPU
# machine (no .NET; carry .publish): runs bench/gpu/run.sh — the GPU tests, GPU checks, benchmarks and the
# PyTorch peer — and prints a short table last.
#   scripts/gpu.sh publish        then, on the GPU machine:   scripts/gpu.sh run [smoke|checks|ours|others|cp4|cp4-others|full|retrieval]
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  publish)
    rm -rf .publish  # what travels is limited (64 MiB with the tracked files): nothing stale
    dotnet publish src/LongCtx.Cli -c Release -r linux-x64 --self-contained -p:PublishTrimmed=true -o .publish/linux-x64 -v quiet -nologo
    # The runtime's debugger, tracing and standalone-GC libraries (6.8 MB) are loaded only on request: left here, they
    # leave room in a call for a retrieval model beside the GPU tests.
    rm -f .publish/linux-x64/{libmscordaccore,libmscordbi,libcoreclrtraceptprovider,libclrgc,libclrgcexp}.so .publish/linux-x64/createdump
    # The serve check (bench/gpu/serve_check.sh) serves the fixture with the Llama 3 tokenizer: packed, 1.6 MB.
    scripts/fetch-tokenizers.sh > /dev/null && tar -C .cache/tokenizers/llama3 -cJf .publish/tokenizer-llama3.tar.xz tokenizer.json tokenizer_config.json
    # The GPU tests' runner (self-contained and trimmed by its project file) travels packed: unpacked (27 MB)
    # it would take what a GPU call carries, .publish and the tracked files (22 MB of fixtures), over 64 MiB.
    # bench/gpu/run.sh unpacks it.
    rm -rf .publish/gpu-tests
    dotnet publish tests/LongCtx.GpuTestRunner -c Release -r linux-x64 -o .publish/gpu-tests -v quiet -nologo
    tar -C .publish -cJf .publish/gpu-tests.tar.xz gpu-tests && rm -r .publish/gpu-tests
    # A call carries 64 MiB with the tracked files (~45 MB): the CLI travels packed too (27 MB -> ~8.5 MB).
    tar -C .publish -cf - linux-x64 | xz -T0 -6 > .publish/linux-x64.tar.xz && rm -r .publish/linux-x64
    du -sh .publish/*.tar.xz; du -sh .publish ;;
  run)
    shift
    [[ -d .publish/linux-x64 ]] || tar -C .publish -xJf .publish/linux-x64.tar.xz
    exec bench/gpu/run.sh "$@" ;;
  *)
    echo "usage: scripts/gpu.sh publish | run [smoke|checks|ours|others|cp4|cp4-others|full|retrieval]" >&2; exit 2 ;;
esac
