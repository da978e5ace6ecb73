#!/usr/bin/env bash
# A kaq BER sweep on Kubernetes: each round is an Indexed Job (ber-indexed-job.yaml) whose
# pod JOB_COMPLETION_INDEX = I runs `kaq ber --shard I/N`, then a merge Job
# (ber-merge-job.yaml); while `kaq merge` exits 3 the next round follows (docs/cluster.md).
# Shard files, states and results live on the sweep's volume (sweep-pvc.yaml).
#
# Start a sweep:
#   deploy/k8s/sweep.sh -s SWEEP -n SHARDS -i IMAGE [options] -- KAQ_BER_ARGS...
# Resume round R of an existing sweep (after a failed Job, for example; shard files already
# written are kept, the rest are recomputed):
#   deploy/k8s/sweep.sh -s SWEEP -n SHARDS -i IMAGE [options] --round R
#
#   -s SWEEP        sweep name: lower-case letters, digits and '-', at most 30
#   -n SHARDS       shards (Job completions) per round
#   -i IMAGE        the kaq container image (deploy/Dockerfile)
#   -p PARALLELISM  pods running at once (default: SHARDS)
#   -t THREADS      CPUs and kaq worker threads per pod (default 1)
#   -r RETRIES      retries per shard index (backoffLimitPerIndex, default 3)
#   KUBECTL         environment: the kubectl command (default kubectl, e.g. "kubectl -n lab")
#   POLL            environment: seconds between status checks (default 5)
# The KAQ_BER_ARGS (detectors, link, SNR, stopping targets, seed, --first-round, ...) go into
# the ConfigMap kaq-sweep-SWEEP-args and to every shard of every round. Results:
# /sweep/ber.json, ber.svg, ber.txt on the volume; the table is printed at the end.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
sweep='' shards='' image='' parallelism='' threads=1 retries=3 round=''
usage() {
    sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
while (($#)); do
    case $1 in
    -s) sweep=${2:?}; shift 2 ;;
    -n) shards=${2:?}; shift 2 ;;
    -i) image=${2:?}; shift 2 ;;
    -p) parallelism=${2:?}; shift 2 ;;
    -t) threads=${2:?}; shift 2 ;;
    -r) retries=${2:?}; shift 2 ;;
    --round) round=${2:?}; shift 2 ;;
    --) shift; break ;;
    *) usage ;;
    esac
done
[[ $sweep =~ ^[a-z0-9]([-a-z0-9]{0,28}[a-z0-9])?$ ]] || usage
[[ $shards =~ ^[1-9][0-9]*$ && -n $image ]] || usage
parallelism=${parallelism:-$shards}
for v in "$parallelism" "$threads"; do [[ $v =~ ^[1-9][0-9]*$ ]] || usage; done
[[ $retries =~ ^[0-9]+$ ]] || usage
read -ra kubectl <<<"${KUBECTL:-kubectl}"
poll=${POLL:-5}

# The manifest $1 with the placeholders of round $round filled in.
render() {
    sed -e "s|__SWEEP__|$sweep|g" -e "s|__ROUND__|$round|g" -e "s|__SHARDS__|$shards|g" \
        -e "s|__PARALLELISM__|$parallelism|g" -e "s|__THREADS__|$threads|g" \
        -e "s|__RETRIES__|$retries|g" -e "s|__IMAGE__|$image|g" "$here/$1"
}

# Prints the state of Job $1: complete, failed, running or absent.
job_state() {
    local conditions
    if ! conditions=$("${kubectl[@]}" get job "$1" \
        -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}' 2>/dev/null); then
        echo absent
        return
    fi
    case " $conditions " in
    *" Complete "*) echo complete ;;
    *" Failed "*) echo failed ;;
    *) echo running ;;
    esac
}

# Waits until Job $1 has completed (status 0) or failed (status 1).
wait_job() {
    local state
    while :; do
        state=$(job_state "$1")
        case $state in
        complete) return 0 ;;
        failed | absent) return 1 ;;
        esac
        sleep "$poll"
    done
}

if [[ -z $round ]]; then
    (($#)) || usage
    args=$(mktemp)
    trap 'rm -f "$args"' EXIT
    printf '%s\n' "$@" >"$args"
    "${kubectl[@]}" create configmap "kaq-sweep-$sweep-args" --from-file=args="$args" >&2
    render sweep-pvc.yaml | "${kubectl[@]}" apply -f - >&2
    round=0
else
    [[ $round =~ ^[0-9]+$ ]] || usage
    (($# == 0)) || { echo "sweep.sh: the arguments of a sweep are fixed in its ConfigMap" >&2; exit 2; }
    # A failed Job of this round is replaced (its pods keep the shard files already
    # written); a running or completed one is kept.
    job=kaq-ber-$sweep-r$round
    if [[ $(job_state "$job") == failed ]]; then
        "${kubectl[@]}" delete job "$job"
    fi
fi

while :; do
    job=kaq-ber-$sweep-r$round
    if [[ $(job_state "$job") == absent ]]; then
        render ber-indexed-job.yaml | "${kubectl[@]}" apply -f - >&2
    fi
    if ! wait_job "$job"; then
        echo "sweep.sh: $job failed; fix the cause, then resume with --round $round" >&2
        exit 1
    fi
    merge=kaq-merge-$sweep-r$round
    "${kubectl[@]}" delete job "$merge" --ignore-not-found >/dev/null
    render ber-merge-job.yaml | "${kubectl[@]}" apply -f - >&2
    wait_job "$merge" || true
    log=$("${kubectl[@]}" logs "job/$merge")
    status=$(sed -n 's/^kaq-merge-exit=//p' <<<"$log" | tail -n 1)
    case $status in
    0)
        grep -v '^kaq-merge-exit=' <<<"$log"
        exit 0
        ;;
    3)
        echo "round $round merged; the sweep needs round $((round + 1))" >&2
        round=$((round + 1))
        ;;
    *)
        echo "sweep.sh: the merge of round $round failed:" >&2
        echo "$log" >&2
        exit 1
        ;;
    esac
done
