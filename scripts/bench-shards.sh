#!/usr/bin/env bash
# Throughput of a sharded BER sweep on this machine: two `kaq ber --shard I/2` processes
# running at once (one worker thread each) plus their `kaq merge`, against one `kaq ber`
# process with one worker thread, on the same work. The sweep is bound by --max-frames (the
# error target is out of reach), so both sides simulate exactly the same frames, and a first
# round that covers every batch makes the sharded run a single round. Both sides are checked
# to write the same JSON before anything is timed.
#
# Usage: scripts/bench-shards.sh [RUNS]     (default 5 runs of each, alternating)
#        scripts/bench-shards.sh --one|--two (one run of one side, for an external timer
#                                             such as hyperfine or /usr/bin/time)
#   KAQ  environment: the kaq binary (default: the workspace's release build, built here)
# Prints the wall time of every run, the medians and the median of the per-pair ratios
# one/two (the speed-up). On a shared machine other load moves the numbers: read the spread
# and the load averages printed before and after.
set -euo pipefail
cd "$(dirname "$0")/.."

side=''
case ${1:-} in
--one | --two) side=${1#--} ;;
*) runs=${1:-5} ;;
esac
[[ -n $side || $runs =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [RUNS | --one | --two]" >&2; exit 2; }
if [[ -z ${KAQ:-} ]]; then
    cargo build --release --quiet --bin kaq
    target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    KAQ=$target/release/kaq
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 8×8 16-QAM, MMSE and K-best (K = 16), four SNR points, 81920 frames each.
sweep=(--detector "mmse,kbest:16" --nt 8 --nr 8 --mod 16qam --snr 0:15:5
    --min-errors 1000000000 --max-frames 81920 --batch 256 --seed 1 --threads 1
    --first-round 1000000)

one() {
    "$KAQ" ber "${sweep[@]}" --json "$work/one.json" >/dev/null 2>&1
}
two() {
    "$KAQ" ber "${sweep[@]}" --shard 0/2 --json "$work/s0.json" 2>/dev/null &
    local first=$!
    "$KAQ" ber "${sweep[@]}" --shard 1/2 --json "$work/s1.json" 2>/dev/null
    wait "$first"
    "$KAQ" merge "$work/s0.json" "$work/s1.json" --json "$work/two.json" >/dev/null
}
seconds() {
    local start end
    start=$(date +%s.%N)
    "$@"
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }'
}
median() {
    sort -g | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.3f\n", m }'
}

if [[ -n $side ]]; then
    "$side"
    exit 0
fi
one
two
cmp "$work/one.json" "$work/two.json" || { echo "bench-shards: the merged JSON differs" >&2; exit 1; }
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "run  one process [s]  two shards + merge [s]  ratio"
ones=() twos=() ratios=()
for ((i = 1; i <= runs; i++)); do
    a=$(seconds one)
    b=$(seconds two)
    r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f\n", a / b }')
    ones+=("$a") twos+=("$b") ratios+=("$r")
    printf '%3d  %17s  %22s  %5s\n' "$i" "$a" "$b" "$r"
done
echo "median one process:   $(printf '%s\n' "${ones[@]}" | median) s"
echo "median two shards:    $(printf '%s\n' "${twos[@]}" | median) s"
echo "median speed-up:      $(printf '%s\n' "${ratios[@]}" | median)x"
echo "load average after:   $(cut -d' ' -f1-3 /proc/loadavg)"
