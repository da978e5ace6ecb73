#!/usr/bin/env bash
# A sharded kaq BER sweep on this machine: N shard processes per round, then `kaq merge`,
# round after round until every point has stopped (docs/cluster.md). The same driver logic
# as deploy/slurm/sweep.sh and deploy/k8s/sweep.sh, with local processes as the workers.
#
# Usage: deploy/local/sweep.sh [-n SHARDS] [-r RETRIES] -o OUTDIR -- KAQ_BER_ARGS...
#   -n SHARDS   shard processes per round (default 2)
#   -r RETRIES  reruns of a failed shard before giving up (default 1); a rerun computes the
#               same shard bit for bit
#   -o OUTDIR   where rounds, states and results go; results: OUTDIR/ber.json, ber.txt
#               (the table), ber.svg
#   KAQ         environment: the kaq binary (default: kaq on PATH)
# Every argument after `--` goes to every `kaq ber` (the sweep: detectors, link, SNR, stopping
# targets, seed, --threads, --first-round); they must be the same in every round.
# Exit status: 0 when the sweep finished, that of the failing command otherwise.
set -euo pipefail

shards=2
retries=1
out=
kaq=${KAQ:-kaq}
usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
while getopts "n:r:o:h" opt; do
    case $opt in
    n) shards=$OPTARG ;;
    r) retries=$OPTARG ;;
    o) out=$OPTARG ;;
    *) usage ;;
    esac
done
shift $((OPTIND - 1))
[[ ${1:-} == -- ]] && shift
[[ -n $out ]] || usage
[[ $shards =~ ^[1-9][0-9]*$ ]] || { echo "sweep.sh: -n must be a positive whole number" >&2; exit 2; }
[[ $retries =~ ^[0-9]+$ ]] || { echo "sweep.sh: -r must be a whole number" >&2; exit 2; }
ber_args=("$@")
mkdir -p "$out"

# Runs shard $1 of round directory $2 with the extra arguments after them.
run_shard() {
    local i=$1 dir=$2
    shift 2
    "$kaq" ber "${ber_args[@]}" "$@" --shard "$i/$shards" --json "$dir/shard-$i.json" \
        2>"$dir/shard-$i.log"
}

round=0
after=()
while :; do
    dir=$out/round-$round
    mkdir -p "$dir"
    pids=()
    for ((i = 0; i < shards; i++)); do
        run_shard "$i" "$dir" "${after[@]}" &
        pids+=("$!")
    done
    for ((i = 0; i < shards; i++)); do
        attempt=0
        until wait "${pids[$i]}"; do
            attempt=$((attempt + 1))
            if ((attempt > retries)); then
                echo "sweep.sh: shard $i/$shards of round $round failed; see $dir/shard-$i.log" >&2
                exit 1
            fi
            echo "sweep.sh: shard $i/$shards of round $round failed; rerunning it" >&2
            run_shard "$i" "$dir" "${after[@]}" &
            pids[i]=$!
        done
    done
    state=$out/state-$((round + 1)).json
    status=0
    files=()
    for ((i = 0; i < shards; i++)); do files+=("$dir/shard-$i.json"); done
    "$kaq" merge "${after[@]}" "${files[@]}" --state "$state" \
        --json "$out/ber.json" --plot "$out/ber.svg" >"$out/ber.txt" || status=$?
    case $status in
    0)
        cat "$out/ber.txt"
        exit 0
        ;;
    3)
        after=(--after "$state")
        round=$((round + 1))
        ;;
    *) exit "$status" ;;
    esac
done
