#!/usr/bin/env bash
# Trains every f32 unfolded-net variant (arch × prox × K × momentum) on the paper protocol and
# compares their BER with MMSE and K-best on 16×16 16-QAM. Reproduces the f32 figures quoted in
# docs/f32-nets.md. Usage: scripts/sweep-f32.sh [OUT_DIR] (default out/sweep-f32).
# Models already in OUT_DIR are reused, so an interrupted sweep resumes where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/sweep-f32}
mkdir -p "$out"
cargo build --release -q
kaq=./target/release/kaq

for arch in pgd admm; do
  models=()
  for prox in soft box qam; do
    for k in 5 10; do
      for momentum in "" "--momentum"; do
        name="$arch-$prox-k$k${momentum:+-mom}"
        models+=(--model "$out/$name.json")
        # Resumable: a model already trained in OUT_DIR is reused; delete it to retrain.
        [ -f "$out/$name.json" ] && continue
        start=$(date +%s%N)
        $kaq train --arch "$arch" --prox "$prox" --layers "$k" $momentum \
          --out "$out/$name.json" --json "$out/$name-history.json" --force > "$out/$name-train.log"
        end=$(date +%s%N)
        ms=$(( (end - start) / 1000000 ))
        printf '%-20s trained in %d.%03d s\n' "$name" $((ms / 1000)) $((ms % 1000)) | tee -a "$out/train-times.txt"
      done
    done
  done
  $kaq ber --detector mmse,kbest:32 "${models[@]}" --snr 0:25:5 \
    --json "$out/ber-$arch.json" --plot "$out/ber-$arch.svg" | tee "$out/ber-$arch.txt"
done
