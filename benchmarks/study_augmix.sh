#!/usr/bin/env bash
# The COVID-19 chest X-ray robustness-and-calibration protocol (Martinez-Martinez & Nabavi; METHODS §1.8) on one
# dataset, small CNN, CPU: standard / pgd_at (L∞ 4/255, 7 steps) / augmix / robust_augmix, then `medrobust compare
# --layout study` under PGD-20 L∞ at ε 1…5/255 (mean adversarial accuracy), Gaussian and speckle noise at variance
# 0.1…1 and salt & pepper at amount 0.1…1 (mean accuracy over levels), RMSCE and mean entropy.
# Usage: bash benchmarks/study_augmix.sh phantom-ct|fashion-mnist [OUT]
# Env: EPOCHS (default 6 phantom / 5 fashion), N (training images), EVAL_N (test subset, default 300).
set -euo pipefail
dataset=${1:?dataset: phantom-ct or fashion-mnist}
out=${2:-runs/study-augmix-$dataset}
mr=${MEDROBUST:-.venv/bin/medrobust}
case $dataset in
  phantom-ct)    data="{size: 32, n: ${N:-1000}}"; epochs=${EPOCHS:-6} ;;
  fashion-mnist) data="{n: ${N:-2000}}";           epochs=${EPOCHS:-5} ;;
  *) echo "unknown dataset $dataset" >&2; exit 2 ;;
esac
levels=0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1
for method in standard pgd_at augmix robust_augmix; do
  if [ -f "$out/$method/checkpoint.pt" ] && [ -f "$out/$method/metrics.json" ]; then continue; fi
  $mr train --dataset "$dataset" --model small_cnn --method "$method" --epochs "$epochs" --seed 0 --no-progress \
    --set "data.options=$data" --out "$out/$method"
done
$mr compare "$out"/{standard,pgd_at,augmix,robust_augmix} --layout study \
  --attack pgd --norm linf --eps 1/255,2/255,3/255,4/255,5/255 --steps 20 \
  --noise "gaussian:$levels" --noise "salt_pepper:$levels" --noise "speckle:$levels" \
  --n "${EVAL_N:-300}" --no-progress --out "$out/comparison"
