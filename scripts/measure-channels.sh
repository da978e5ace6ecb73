#!/usr/bin/env bash
# Measures docs/channels.md: BER vs SNR under perfect / LMMSE / LS CSI at L_p = Nt and 2 Nt
# for MMSE, kbest:32 and an OAMP-Net2 trained on the same CSI, and site-specific training on
# the geometric site stand-in (`kaq site`). Link: 8x16 (Nt = 8 users, Nr = 16), 16-QAM.
# Usage: measure-channels.sh OUTDIR   (about 40 minutes on one free core; the tails of 1b
# take most of it)
set -euo pipefail
out=${1:?usage: measure-channels.sh OUTDIR}
mkdir -p "$out"
cd "$out"
kaq=${KAQ:-kaq}
link=(--nt 8 --nr 16 --mod 16qam)
lo=(--snr 4,7,10,13,16 --val-snr 8,12)
hi=(--snr 10,13,16,19,22 --val-snr 14,18)
# The training flags without the SNRs (a repeated --snr adds to the list, it does not replace it).
net=(--arch oamp --layers 10 --epochs 6 --lr-step 2 --lr 1e-2 --samples 10000
  --val-samples 1000 --val-frames 500 --force)
train=("${net[@]}" "${lo[@]}")
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

# 1b. The high-SNR tails again with a 1.5 M-frame cap (48 M bits), for the points of 1. that
# stop at the 100 000-frame cap with fewer than 1000 bit errors but can reach 1000 within
# 1.5 M frames (BER above 2.1e-5); channels-tables.py takes a point from tail-*.json when it
# has more bit errors. The points below that (kbest:32 at 18-20 dB with perfect CSI and at 20
# dB with L_p = 16, the net at 20 dB with perfect CSI) stay marked with their error counts.
tail=(--min-errors 1000 --max-frames 1500000 --force)
$kaq ber "${link[@]}" --detector kbest:32 --snr 16 "${tail[@]}" --json tail-perfect-a.json
$kaq ber "${link[@]}" --detector mmse --model oamp-perfect.model.json --snr 18:20:2 "${tail[@]}" \
  --json tail-perfect-b.json
for csi in lmmse-8 ls-8 lmmse-16 ls-16; do
  flags=(--csi "${csi%-*}" --pilots "${csi#*-}")
  case $csi in
    *-8) $kaq ber "${link[@]}" --detector kbest:32 "${flags[@]}" --snr 20 "${tail[@]}" \
      --json "tail-$csi-a.json" ;;
    *-16)
      $kaq ber "${link[@]}" --detector kbest:32 "${flags[@]}" --snr 18 "${tail[@]}" \
        --json "tail-$csi-a.json"
      $kaq ber "${link[@]}" --detector mmse --model "oamp-$csi.model.json" "${flags[@]}" \
        --snr 20 "${tail[@]}" --json "tail-$csi-b.json" ;;
  esac
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

# 3. The same OAMP-Net2 trained at the site's operating SNRs (10-22 dB), on the site and on
# i.i.d.; BER files hi-{site,iid}-hi-on-{site,iid}.json.
$kaq train "${link[@]}" "${net[@]}" "${hi[@]}" --channels site-train.npy \
  --out oamp-site-hi.model.json > train-site-hi.log
$kaq train "${link[@]}" "${net[@]}" "${hi[@]}" --out oamp-iid-hi.model.json > train-iid-hi.log
for test in site iid; do
  case $test in
    site) flags=(--channels site-test.npy) ;;
    iid) flags=() ;;
  esac
  for net in site iid; do
    $kaq ber "${link[@]}" --detector mmse --model "oamp-$net-hi.model.json" "${flags[@]}" \
      --snr 4:20:2 "${ber[@]}" --json "hi-$net-hi-on-$test.json"
  done
done

# 4. Nets with more site-dependent capacity, trained twice as long (2e4 samples, 10 epochs,
# lr halved every 3) at 10-22 dB, each on the site and on i.i.d.: the unfolded CG net with 8
# layers of 8 learned Jacobi steps (its steps follow the spectrum of G, which the site
# changes) and OAMP-Net2 under the same budget. All four nets on the same frames, on the
# site's held-out file and on i.i.d.
long=(--epochs 10 --lr-step 3 --lr 1e-2 --samples 20000 --val-samples 1000 --val-frames 500
  "${hi[@]}" --force)
for net in site iid; do
  case $net in
    site) flags=(--channels site-train.npy) ;;
    iid) flags=() ;;
  esac
  $kaq train "${link[@]}" "${long[@]}" --arch cg --layers 8 --inner 8 "${flags[@]}" \
    --out "cg-$net.model.json" > "train-cg-$net.log"
  $kaq train "${link[@]}" "${long[@]}" --arch oamp --layers 10 "${flags[@]}" \
    --out "oampl-$net.model.json" > "train-oampl-$net.log"
done
nets=(--model cg-site.model.json --model cg-iid.model.json --model oampl-site.model.json
  --model oampl-iid.model.json)
$kaq ber "${link[@]}" --detector mmse "${nets[@]}" --channels site-test.npy --snr 12:22:2 \
  --min-errors 1000 --max-frames 200000 --force --json long-on-site.json \
  --plot long-on-site.svg
$kaq ber "${link[@]}" --detector mmse "${nets[@]}" --snr 8:20:2 \
  --min-errors 1000 --max-frames 200000 --force --json long-on-iid.json \
  --plot long-on-iid.svg

# 4b. The two nets that decide the site comparison trained again from another seed (other
# training and validation sets), on the site's held-out file.
$kaq train "${link[@]}" "${long[@]}" --seed 2 --arch cg --layers 8 --inner 8 \
  --channels site-train.npy --out s2-cg-site.model.json > train-s2-cg-site.log
$kaq train "${link[@]}" "${long[@]}" --seed 2 --arch oamp --layers 10 \
  --out s2-oamp-iid.model.json > train-s2-oamp-iid.log
$kaq ber "${link[@]}" --detector mmse --model s2-cg-site.model.json \
  --model s2-oamp-iid.model.json --channels site-test.npy --snr 12:22:2 --min-errors 1000 \
  --max-frames 200000 --force --json s2-on-site.json

# 5. The site-trained CG net quantized by post-training quantization (kaq lower --ptq-bits,
# the integer golden model run by kaq ber --ir) beside the f32 net on the held-out file (the
# same frames). Calibrated on the site's training file (--channels), and on i.i.d. frames: the
# same parameters in a copy of the model file without its dataset record.
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); [l.pop("dataset", None) for l in (d["net"]["link"], d["train"]["link"])]; json.dump(d, open(sys.argv[2], "w"), indent=2)' \
  cg-site.model.json cg-site-iidcal.model.json
for b in 8 10; do
  $kaq lower --model cg-site.model.json --ptq-bits "$b" --channels site-train.npy \
    --out "cg-site-ptq$b.ir.json" --force > "lower-cg-site-ptq$b.log"
  $kaq lower --model cg-site-iidcal.model.json --ptq-bits "$b" \
    --out "cg-site-iidcal-ptq$b.ir.json" --force > "lower-cg-site-iidcal-ptq$b.log"
done
$kaq ber "${link[@]}" --detector mmse --model cg-site.model.json --ir cg-site-ptq8.ir.json \
  --ir cg-site-ptq10.ir.json --ir cg-site-iidcal-ptq8.ir.json --ir cg-site-iidcal-ptq10.ir.json \
  --channels site-test.npy --snr 10:22:2 --min-errors 1000 --max-frames 100000 --force \
  --json quant-on-site.json --plot quant-on-site.svg

# 5b. The site calibration with the 99.9th and 99th percentile rules.
for q in p99.9 p99; do
  for b in 8 10; do
    $kaq lower --model cg-site.model.json --ptq-bits "$b" --channels site-train.npy \
      --calibration "$q" --out "cg-site-$q-ptq$b.ir.json" --force > "lower-cg-site-$q-ptq$b.log"
  done
done
$kaq ber "${link[@]}" --detector mmse --model cg-site.model.json \
  --ir cg-site-p99.9-ptq8.ir.json --ir cg-site-p99.9-ptq10.ir.json --ir cg-site-p99-ptq8.ir.json \
  --ir cg-site-p99-ptq10.ir.json --channels site-test.npy --snr 10:22:2 --min-errors 1000 \
  --max-frames 100000 --force --json quant-pct-on-site.json --plot quant-pct-on-site.svg

# 6. The unfolded CG net of 4. under estimated CSI: trained on the CSI it is tested on (the
# i.i.d.-trained cg-iid of 4. for perfect CSI), BER files ber-cg-CSI.json beside ber-CSI.json
# (same seed and SNRs, so the same frames; channels-tables.py takes the net's rows from them).
for csi in lmmse-8 lmmse-16 ls-8 ls-16; do
  flags=(--csi "${csi%-*}" --pilots "${csi#*-}")
  $kaq train "${link[@]}" "${long[@]}" --arch cg --layers 8 --inner 8 "${flags[@]}" \
    --out "cg-$csi.model.json" > "train-cg-$csi.log"
done
for csi in perfect lmmse-8 lmmse-16 ls-8 ls-16; do
  case $csi in
    perfect) flags=(); model=cg-iid.model.json ;;
    *) flags=(--csi "${csi%-*}" --pilots "${csi#*-}"); model=cg-$csi.model.json ;;
  esac
  $kaq ber "${link[@]}" --detector mmse --model "$model" "${flags[@]}" --snr 4:20:2 \
    "${ber[@]}" --json "ber-cg-$csi.json" --plot "ber-cg-$csi.svg"
done
