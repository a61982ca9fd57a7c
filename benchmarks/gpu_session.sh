#!/usr/bin/env bash
# Every GPU measurement of the project in one command, for a borrowed GPU machine with a time limit:
#   1. benchmarks/bench_gpu.py in fp32, then with bfloat16 AMP + channels_last (issue 14),
#   2. the multi-seed studies (issue 12: IMA on phantom-ct and Fashion-MNIST, AMAT on segmentation and landmarks;
#      issue 16: detection), all at once, each running several runs in parallel on the one GPU.
# Every study is resumable, so a second call continues where a time limit stopped the first.
#
# Usage: benchmarks/gpu_session.sh OUT [SECONDS]
#   OUT      folder for env.txt, bench_gpu.md, bench_gpu_*.json and studies.tgz (run folders without checkpoints,
#            study reports, plots and logs)
#   SECONDS  time for the whole session (default 540): the studies get what the benchmarks leave, less 30 s for
#            packing the results
# Environment: RUNS (run folders, default runs/gpu), FASHION (folder holding the four Fashion-MNIST IDX files, copied
# to Debian's location when that is missing), MEDROBUST_CACHE (phantom caches made beforehand, so that parallel runs
# do not all simulate the same split).
set -uo pipefail
out=${1:?usage: benchmarks/gpu_session.sh OUT [SECONDS]}
total=${2:-540}
runs=${RUNS:-runs/gpu}
mkdir -p "$out" "$runs/logs"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
if [ -n "${FASHION:-}" ] && [ ! -e /usr/share/datasets/fashion-mnist ]; then
    mkdir -p /usr/share/datasets && cp -r "$FASHION" /usr/share/datasets/fashion-mnist
fi
{ nvidia-smi -L; python3 -c 'import torch, numpy; print("torch", torch.__version__, "numpy", numpy.__version__)'
  nproc; date -u; } | tee "$out/env.txt"

timeout 180 python3 benchmarks/bench_gpu.py --json "$out/bench_gpu_fp32.json" | tee "$out/bench_gpu.md"
timeout 180 python3 benchmarks/bench_gpu.py --amp --channels-last --json "$out/bench_gpu_amp.json" \
    | tee -a "$out/bench_gpu.md"

limit=$((total - SECONDS - 30))
echo "studies: $limit s each" | tee -a "$out/env.txt"
study() {  # NAME SCRIPT ARGS...: one study under the time limit, its log beside the runs
    local name=$1 start=$SECONDS
    shift
    timeout "$limit" python3 "$@" --device cuda --out "$runs/$name" >"$runs/logs/$name.log" 2>&1
    echo "$name: exit $? after $((SECONDS - start)) s" | tee -a "$out/env.txt"
}
study ima-phantom-ct benchmarks/study_ima.py phantom-ct --jobs 5 &
study ima-fashion-mnist benchmarks/study_ima.py fashion-mnist --jobs 6 &
study amat-seg benchmarks/study_amat.py seg --jobs 4 &
study amat-landmark benchmarks/study_amat.py landmark --jobs 3 &
study detection benchmarks/study_detection.py --jobs 4 &
wait
pkill -f medrobust.cli  # runs of a study stopped by its time limit
tar czf "$out/studies.tgz" -C "$(dirname "$runs")" --exclude=checkpoint.pt "$(basename "$runs")"
