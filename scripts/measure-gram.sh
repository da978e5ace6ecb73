#!/usr/bin/env bash
# Trains the three Gram-domain nets of docs/f32-nets.md and measures them beside MMSE and
# K-best (16x16 16-QAM, i.i.d. Rayleigh and Kronecker rho = 0.5). Usage: measure-gram.sh OUTDIR
set -euo pipefail
out=${1:?usage: measure-gram.sh OUTDIR}
mkdir -p "$out"
cd "$out"
kaq=${KAQ:-kaq}
common=(--samples 20000 --val-samples 2000 --val-frames 2000 --lr 1e-2 --force)
$kaq train --arch ep --layers 10 --epochs 12 --lr-step 4 --snr 14,16,18,20,22 --val-snr 16,18,20 \
  "${common[@]}" --out ep-k10.model.json
$kaq train --arch oamp --layers 10 --epochs 8 --lr-step 3 --snr 15,18,21,24,27 --val-snr 18,21,24 \
  "${common[@]}" --out oamp-k10.model.json
$kaq train --arch cg --layers 8 --inner 4 --epochs 8 --lr-step 3 --snr 15,18,21,24,27 \
  --val-snr 18,21,24 "${common[@]}" --out cg-k8-l4.model.json
models=(--model ep-k10.model.json --model oamp-k10.model.json --model cg-k8-l4.model.json)
$kaq ber --detector mmse,kbest:32 "${models[@]}" --snr 14:28:1 --min-errors 1000 \
  --max-frames 100000 --json ber-main.json --plot ber-main.svg
$kaq ber --detector mmse --snr 28:44:1 --min-errors 1000 --max-frames 400000 --json ber-mmse.json
$kaq ber --detector mmse,kbest:32 "${models[@]}" --rho-tx 0.5 --rho-rx 0.5 --snr 16:40:2 \
  --min-errors 1000 --max-frames 60000 --json ber-kron.json --plot ber-kron.svg
here=$(dirname "$0")
python3 "$here/gram-crossings.py" --cost mmse=5854 --cost ep-k10=195959 --cost oamp-k10=31576 \
  --cost cg-k8-l4=38664 --front front.svg ber-main.json ber-mmse.json
python3 "$here/gram-crossings.py" ber-kron.json
