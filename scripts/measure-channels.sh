#!/usr/bin/env bash
# Measures docs/channels.md: BER vs SNR under perfect / LMMSE / LS CSI at L_p = Nt and 2 Nt
# for MMSE, kbest:32 and an OAMP-Net2 trained on the same CSI, and site-specific training on
# the geometric site stand-in (`kaq site`). Link: 8x16 (Nt = 8 users, Nr = 16), 16-QAM.
# Usage: measure-channels.sh OUTDIR   (about 10 minutes on one free core)
set -euo pipefail
out=${1:?usage: measure-channels.sh OUTDIR}
mkdir -p "$out"
cd "$out"
kaq=${KAQ:-kaq}
link=(--nt 8 --nr 16 --mod 16qam)
train=(--arch oamp --layers 10 --epochs 6 --lr-step 2 --lr 1e-2 --samples 10000
  --val-samples 1000 --val-frames 500 --snr 4,7,10,13,16 --val-snr 8,12 --force)
ber=(--min-errors 1000 --max-frames 100000 --force)

# 1. CSI: every net trains on the CSI it is tested on.
for csi in perfect lmmse-8 lmmse-16 ls-8 ls-16; do
  case $csi in
    perfect) flags=() ;;
    *) flags=(--csi "${csi%-*}" --pilots "${csi#*-}") ;;
  esac
  $kaq train "${link[@]}" "${train[@]}" "${flags[@]}" --out "oamp-$csi.model.json" > "train-$csi.log"
  $kaq ber "${link[@]}" --detector mmse,kbest:32 --model "oamp-$csi.model.json" "${flags[@]}" \
    --snr 4:20:2 "${ber[@]}" --json "ber-$csi.json" --plot "ber-$csi.svg"
done

# 2. Site: one site (4 clusters, 8 degrees rms spread, no line of sight), a training file and
# a held-out file of the same geometry drawn from another seed.
site=(--nt 8 --nr 16 --clusters 4 --spread 8 --site 1)
$kaq site "${site[@]}" --channels 20000 --seed 1 --out site-train.npy --force > site.json
$kaq site "${site[@]}" --channels 4000 --seed 2 --out site-test.npy --force > /dev/null
$kaq train "${link[@]}" "${train[@]}" --channels site-train.npy --out oamp-site.model.json \
  > train-site.log
# oamp-iid is oamp-perfect above (i.i.d. Rayleigh, perfect CSI).
for test in site iid; do
  case $test in
    site) flags=(--channels site-test.npy) ;;
    iid) flags=() ;;
  esac
  for net in site perfect; do
    $kaq ber "${link[@]}" --model "oamp-$net.model.json" "${flags[@]}" --snr 4:20:2 "${ber[@]}" \
      --json "site-$net-on-$test.json"
  done
  $kaq ber "${link[@]}" --detector mmse,kbest:32 "${flags[@]}" --snr 4:20:2 "${ber[@]}" \
    --json "site-ref-on-$test.json"
done
