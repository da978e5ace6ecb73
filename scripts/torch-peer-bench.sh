#!/usr/bin/env bash
# Training speed of `kaq train` against the PyTorch peer (scripts/torch_peer.py) on the same
# work, one thread each, whole processes timed by /usr/bin/time, kaq and PyTorch in turn
# (A B A B ...) so that the ratio of each pair holds when the machine's speed drifts.
# docs/f32-nets.md ("Training speed against PyTorch") has the measured table.
#
# Usage: scripts/torch-peer-bench.sh [RUNS] [NET ...]   (default 3 runs; nets pgd cg ep oamp)
#        scripts/torch-peer-bench.sh --paper            (the paper-scale trainings, 2 threads)
#   KAQ     the kaq binary (default: the workspace's release build, built here)
#   PYTHON  the Python with torch installed (default python3); PyTorch itself is not a
#           dependency of the project: `pip install torch` (the CPU wheel is enough)
#   WARMUP  pairs run first and not counted (default 0)
# Prints, per net, the median user+system CPU seconds and wall seconds of each side and the
# median of the per-pair ratios PyTorch/kaq (the speed-up of kaq). The work of every net is
# stated by the peer's `work=` field: batches x batch size x layers, plus the validation passes.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z ${KAQ:-} ]]; then
  cargo build --release --quiet --bin kaq
  KAQ=$PWD/target/release/kaq
fi
PYTHON=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The same flags for both sides: the defaults of `kaq train` (16x16 16-QAM, SNR uniform over
# {0, 5, ..., 25} dB, Adam lr 1e-3 halved every 10 epochs, batch 128, seed 1) with a shorter
# run (samples x epochs) and a small validation, sized so the training steps dominate.
declare -A work=(
  [pgd]="--arch pgd --samples 50000 --epochs 3"
  [cg]="--arch cg --layers 8 --inner 4 --samples 20000 --epochs 2"
  [ep]="--arch ep --layers 10 --samples 12800 --epochs 1"
  [oamp]="--arch oamp --layers 10 --samples 20000 --epochs 1"
)
val="--val-samples 1000 --val-frames 1000 --val-snr 20"

if [[ ${1:-} == --paper ]]; then
  # The trainings behind docs/f32-nets.md, on two threads: the paper's PGD-Net protocol and the
  # three Gram-domain runs of scripts/measure-gram.sh.
  common=(--samples 20000 --val-samples 2000 --val-frames 2000 --lr 1e-2 --force --threads 2)
  runs=(
    "pgd|--force --threads 2"
    "ep-k10|--arch ep --layers 10 --epochs 12 --lr-step 4 --snr 14,16,18,20,22 --val-snr 16,18,20 ${common[*]}"
    "oamp-k10|--arch oamp --layers 10 --epochs 8 --lr-step 3 --snr 15,18,21,24,27 --val-snr 18,21,24 ${common[*]}"
    "cg-k8-l4|--arch cg --layers 8 --inner 4 --epochs 8 --lr-step 3 --snr 15,18,21,24,27 --val-snr 18,21,24 ${common[*]}"
  )
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  for run in "${runs[@]}"; do
    name=${run%%|*}
    # shellcheck disable=SC2086
    /usr/bin/time -f "%U %S %e" -o "$tmp/t" "$KAQ" train ${run#*|} --out "$tmp/m.json" >/dev/null
    read -r u s e <"$tmp/t"
    printf '%-10s wall %7.1f s  cpu %7.1f s\n' "$name" "$e" "$(echo "$u + $s" | bc)"
  done
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
  exit 0
fi

runs=${1:-3}
shift || true
nets=("$@")
[[ ${#nets[@]} -gt 0 ]] || nets=(pgd cg ep oamp)
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
timed() { # timed FILE CMD...: appends "cpu wall" of one run of CMD to FILE
  local out=$1
  shift
  : >"$tmp/run"
  if ! /usr/bin/time -f "%U %S %e" -o "$tmp/t" "$@" >"$tmp/run" 2>&1; then
    echo "torch-peer-bench: failed: $*" >&2
    tail -n 20 "$tmp/run" >&2
    exit 1
  fi
  cat "$tmp/run" >>"$tmp/log"
  awk '{printf "%.3f %.3f\n", $1 + $2, $3}' "$tmp/t" >>"$out"
}
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-5s %12s %12s %12s %12s %10s %10s  %s\n' net kaq-cpu-s torch-cpu-s kaq-wall-s \
  torch-wall-s cpu-ratio wall-ratio work
for net in "${nets[@]}"; do
  args="${work[$net]:?unknown net $net (pgd, cg, ep, oamp)}"
  : >"$tmp/k" && : >"$tmp/p"
  for ((i = 0; i < ${WARMUP:-0}; i++)); do
    # shellcheck disable=SC2086
    timed "$tmp/warm" "$KAQ" train $args $val --threads 1 --out "$tmp/m.json" --force
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 timed "$tmp/warm" "$PYTHON" scripts/torch_peer.py $args $val --threads 1
  done
  for ((i = 0; i < runs; i++)); do
    # shellcheck disable=SC2086
    timed "$tmp/k" "$KAQ" train $args $val --threads 1 --out "$tmp/m.json" --force
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 timed "$tmp/p" "$PYTHON" scripts/torch_peer.py $args $val --threads 1
  done
  ratios=$(paste "$tmp/p" "$tmp/k" | awk '{printf "%.4f %.4f\n", $1 / $3, $2 / $4}')
  if ! workline=$(grep -o 'work=[0-9x]*' "$tmp/log" | tail -1); then
    echo "torch-peer-bench: the peer printed no work= line for $net; its output:" >&2
    tail -n 20 "$tmp/log" >&2
    exit 1
  fi
  printf '%-5s %12s %12s %12s %12s %10s %10s  %s\n' "$net" \
    "$(cut -d' ' -f1 "$tmp/k" | median)" "$(cut -d' ' -f1 "$tmp/p" | median)" \
    "$(cut -d' ' -f2 "$tmp/k" | median)" "$(cut -d' ' -f2 "$tmp/p" | median)" \
    "$(echo "$ratios" | cut -d' ' -f1 | median)" "$(echo "$ratios" | cut -d' ' -f2 | median)" \
    "${workline#work=}"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
