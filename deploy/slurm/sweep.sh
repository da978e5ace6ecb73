#!/usr/bin/env bash
# A kaq BER sweep on Slurm: each round is a job array of `kaq ber --shard I/N` tasks
# (ber-round.sbatch) followed by a dependent merge job (ber-merge.sbatch, afterok) that
# submits the next round while `kaq merge` exits 3 (docs/cluster.md).
#
# Start a sweep:
#   deploy/slurm/sweep.sh -n SHARDS -d SWEEP_DIR -- KAQ_BER_ARGS...
# Submit (or resubmit) round R of an existing sweep; only the shards whose files are missing
# run again (after a failed task, for example), then the merge:
#   deploy/slurm/sweep.sh -n SHARDS -d SWEEP_DIR --round R
#
#   -n SHARDS     array tasks per round
#   -d SWEEP_DIR  the sweep directory, on a file system every node sees
#   KAQ           environment: the kaq binary on the nodes (default: kaq on PATH)
#   KAQ_SBATCH    environment: extra sbatch options for every job, e.g.
#                 "--partition=cpu --time=02:00:00 --cpus-per-task=4"
#   SBATCH        environment: the sbatch command (default: sbatch)
# The KAQ_BER_ARGS (detectors, link, SNR, stopping targets, seed, --first-round, ...) are kept
# in SWEEP_DIR/args and given to every shard of every round.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
shards=
dir=
round=
usage() {
    sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
while (($#)); do
    case $1 in
    -n) shards=${2:?}; shift 2 ;;
    -d) dir=${2:?}; shift 2 ;;
    --round) round=${2:?}; shift 2 ;;
    --) shift; break ;;
    *) usage ;;
    esac
done
[[ -n $dir && $shards =~ ^[1-9][0-9]*$ ]] || usage
read -ra sbatch <<<"${SBATCH:-sbatch}"
read -ra extra <<<"${KAQ_SBATCH:-}"

if [[ -z $round ]]; then
    (($#)) || usage
    [[ ! -e $dir/args ]] || { echo "sweep.sh: $dir already holds a sweep; resume it with --round R" >&2; exit 2; }
    mkdir -p "$dir"
    printf '%s\n' "$@" >"$dir/args"
    round=0
else
    [[ $round =~ ^[0-9]+$ && -e $dir/args ]] || usage
    (($# == 0)) || { echo "sweep.sh: the arguments of a sweep are fixed in $dir/args" >&2; exit 2; }
fi
dir=$(cd "$dir" && pwd)

missing=()
for ((i = 0; i < shards; i++)); do
    [[ -e $dir/round-$round/shard-$i.json ]] || missing+=("$i")
done
export KAQ_SWEEP_DIR=$dir KAQ_ROUND=$round KAQ_SHARDS=$shards KAQ_DEPLOY_DIR=$here
dependency=()
if ((${#missing[@]})); then
    if ((${#missing[@]} == shards)); then
        list=0-$((shards - 1))
    else
        list=$(IFS=,; echo "${missing[*]}")
    fi
    job=$("${sbatch[@]}" --parsable "${extra[@]}" --array="$list" --export=ALL \
        "$here/ber-round.sbatch")
    job=${job%%;*}
    dependency=(--dependency="afterok:$job")
    echo "round $round: array job $job (shards $list of $shards)"
fi
merge=$("${sbatch[@]}" --parsable "${extra[@]}" "${dependency[@]}" --export=ALL \
    "$here/ber-merge.sbatch")
echo "round $round: merge job ${merge%%;*}; results in $dir/ber.json when the sweep ends"
