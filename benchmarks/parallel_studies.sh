#!/usr/bin/env bash
# Train the rank study (40 candidates + 10 second seeds) and the paper ablation (26 runs) with N
# workers on one machine — on a GPU box every worker trains on the same GPU — starting no
# training after STOP_S seconds, then analyse. Resumable like the two scripts it runs.
#
#   benchmarks/parallel_studies.sh [N=12] [STOP_S=3600] [RECIPE=default]   (PYTHON=... to override)
set -u
n=${1:-12}
stop=${2:-3600}
recipe=${3:-default}
py=${PYTHON:-.venv/bin/python}
deadline=$(date -u -d "@$(($(date +%s) + stop))" +%H:%M)
rank=$(((n * 50 + 38) / 76)) # workers in proportion to the jobs: 50 rank-study, 26 ablation
rank=$((rank < 1 ? 1 : rank))
abl=$((n - rank < 1 ? 1 : n - rank))
logs=runs/bench/logs
mkdir -p "$logs"
echo "$rank rank-study + $abl ablation workers, recipe $recipe, no new training after $deadline UTC"
for i in $(seq 0 $((rank - 1))); do
    "$py" -m benchmarks.rank_study --recipe "$recipe" --shard "$i/$rank" --deadline "$deadline" \
        >"$logs/rank_study-$i.log" 2>&1 &
done
for i in $(seq 0 $((abl - 1))); do
    "$py" -m benchmarks.paper_ablation --recipe "$recipe" --shard "$i/$abl" --deadline "$deadline" \
        >"$logs/paper_ablation-$i.log" 2>&1 &
done
wait
"$py" -m benchmarks.rank_study --recipe "$recipe" --analyze-only
"$py" -m benchmarks.paper_ablation --recipe "$recipe" --analyze-only
