#!/usr/bin/env bash
# The AMAT dense-task comparison (issue 6; METHODS §1.6) on the embedded phantom, 32×32, small U-Net, CPU:
# standard, then SAT (pgd_at) at a small and a large L2 ε and AMAT, all three fine-tuned from the standard
# weights with the same PGD steps, then `medrobust compare` under L2 PGD-20 (each ε attacked independently,
# no early stop): clean Dice (MRE/SDR for landmarks), the metric at each ε, AUC-robustness, s/epoch.
# Usage: bash benchmarks/study_dense.sh seg|landmark [OUT]
# Env: EPOCHS_STD (15), EPOCHS_ADV (4), ADV_N (fine-tuning images, 300), STEPS (training PGD steps, 7), EPS_SMALL,
#      EPS_LARGE, EVAL_EPS, EVAL_N (test subset, 100), PARALLEL (1: train / evaluate the runs at once).
set -euo pipefail
kind=${1:?kind: seg or landmark}
out=${2:-runs/study-dense-$kind}
mr=${MEDROBUST:-.venv/bin/medrobust}
steps=${STEPS:-7}
case $kind in
  seg)      dataset=phantom-ct-seg;      small=${EPS_SMALL:-0.1}; large=${EPS_LARGE:-0.5}; eval_eps=${EVAL_EPS:-0.1,0.25,0.5,1} ;;
  landmark) dataset=phantom-ct-landmark; small=${EPS_SMALL:-0.1}; large=${EPS_LARGE:-0.5}; eval_eps=${EVAL_EPS:-0.1,0.25,0.5,1} ;;
  *) echo "unknown kind $kind (seg or landmark)" >&2; exit 2 ;;
esac
delta=$(python3 -c "print($large / ${EPOCHS_ADV:-4})")  # AMAT margins can reach the large ε within the epochs
common=(--dataset "$dataset" --model unet --seed 0 --batch-size 32 --no-progress --set "model.options={width: 16}")
done_run() { [ -f "$1/checkpoint.pt" ] && [ -f "$1/metrics.json" ]; }
done_run "$out/standard" || $mr train "${common[@]}" --method standard --epochs "${EPOCHS_STD:-15}" --lr 3e-3 \
  --set "data.options={size: 32, n: 1000}" --out "$out/standard"
adv() {  # name method options
  done_run "$out/$1" || $mr train "${common[@]}" --method "$2" --epochs "${EPOCHS_ADV:-4}" --lr 1e-3 \
    --init "$out/standard" --set "data.options={size: 32, n: ${ADV_N:-300}}" --set "method.options=$3" --out "$out/$1"
}
wait_all() { local pid; for pid in "$@"; do wait "$pid"; done; }  # fails (set -e) if any background job failed
if [ "${PARALLEL:-1}" = 1 ]; then
  adv sat-small pgd_at "{norm: l2, eps: $small, steps: $steps}" & p1=$!
  adv sat-large pgd_at "{norm: l2, eps: $large, steps: $steps}" & p2=$!
  adv amat amat "{norm: l2, delta: $delta, steps: $steps}" & p3=$!
  wait_all $p1 $p2 $p3
else
  adv sat-small pgd_at "{norm: l2, eps: $small, steps: $steps}"
  adv sat-large pgd_at "{norm: l2, eps: $large, steps: $steps}"
  adv amat amat "{norm: l2, delta: $delta, steps: $steps}"
fi
grid=(--attack pgd --norm l2 --eps "$eval_eps" --steps 20 --n "${EVAL_N:-100}" --no-progress)
if [ "${PARALLEL:-1}" = 1 ]; then  # results.json per run, reused by compare (same grid, seed and subset)
  pids=()
  for run in standard sat-small sat-large amat; do
    $mr evaluate "$out/$run" "${grid[@]}" > "$out/$run/evaluate.log" & pids+=($!)
  done
  wait_all "${pids[@]}"
fi
$mr compare "$out"/{standard,sat-small,sat-large,amat} "${grid[@]}" --out "$out/comparison"
