#!/usr/bin/env bash
# Standard vs SAT (two eps) vs TRADES vs Fast-AT vs IMA on one dataset, small CNN, CPU, then `medrobust compare`
# under 100-step L2 PGD (step eps/10, CE and margin losses, worst case).
# Usage: bash benchmarks/study_classification.sh phantom-ct|fashion-mnist [OUT]   (N_EVAL=250: test images attacked)
set -euo pipefail
dataset=${1:?dataset: phantom-ct or fashion-mnist}
out=${2:-runs/study-$dataset}
mr=${MEDROBUST:-.venv/bin/medrobust}
case $dataset in
  phantom-ct)    data='{size: 32, n: 1000}'; e1=0.05; e2=0.1; emax=0.3; delta=0.03; delta2=0.06; eps=0,0.05,0.1,0.2,0.3 ;;
  fashion-mnist) data='{n: 2000}';           e1=0.25; e2=0.5; emax=1.0; delta=0.1;  delta2=0.2;  eps=0,0.25,0.5,1,1.5 ;;
  *) echo "unknown dataset $dataset" >&2; exit 2 ;;
esac
train() {  # name method options
  $mr train --dataset "$dataset" --model small_cnn --method "$2" --epochs 5 --seed 0 --no-progress \
    --set "data.options=$data" --set "method.options=$3" --out "$out/$1"
}
train standard standard '{}'
train "sat-$e1" pgd_at "{eps: $e1, norm: l2, steps: 7}"
train "sat-$e2" pgd_at "{eps: $e2, norm: l2, steps: 7}"
train trades trades "{eps: $e2, norm: l2, steps: 7}"
train fast_at fast_at "{eps: $e2, norm: l2}"
train ima ima "{norm: l2, e_max: $emax, delta: $delta, steps: 7}"
train "ima-delta$delta2" ima "{norm: l2, e_max: $emax, delta: $delta2, steps: 7}"  # margins can reach E_max in 5 epochs
$mr compare "$out"/{standard,sat-$e1,sat-$e2,trades,fast_at,ima,ima-delta$delta2} --norm l2 --eps "$eps" --steps 100 --rel-step 10 \
  --loss ce,margin --n "${N_EVAL:-250}" --no-progress --out "$out/comparison"
