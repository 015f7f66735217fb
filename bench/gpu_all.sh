#!/usr/bin/env bash
# Every GPU measurement and GPU test in one go, for one call of the lent GPU machine (see docs/PERFORMANCE.md).
# Usage on a CUDA machine from the repo root: bash bench/gpu_all.sh   (results under $OUT, default ./out)
# Needs gsplat 1.5.3 (+ jaxtyping): wheels in .whl/ are installed to /tmp/site when present.
set -uo pipefail
source bench/device_env.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"
step() { local name=$1; shift; echo "== $name"; local t0=$SECONDS; timeout "${STEP_TIMEOUT:-300}" "$@" > "$OUT/$name.log" 2>&1; echo "   rc=$? ${name} $((SECONDS-t0))s"; tail -n 25 "$OUT/$name.log"; }
for s in ${STEPS:-compile tests render model data priors train}; do
  case $s in
    compile) step compile python3 -c "$GSPLAT_COMPILE_PY" ;;
    tests) step tests python3 -m pytest -q -m gpu tests -p no:cacheprovider ;;
    render) [ -f bench/render_gpu.py ] && step render python3 bench/render_gpu.py ;;
    model) [ -f bench/model_gpu.py ] && step model python3 bench/model_gpu.py ${MODEL_ARGS:-} ;;
    data) [ -f bench/data_batch.py ] && step data python3 bench/data_batch.py --device cuda ;;
    priors) [ -f bench/priors_gpu.py ] && step priors python3 bench/priors_gpu.py ;;
    train) [ -f bench/train_gpu.py ] && step train python3 bench/train_gpu.py ${TRAIN_ARGS:-} ;;
  esac
done
# the device returns at most 8 files: pack the logs and JSON results into one archive
(cd "$OUT" && tar czf gpu_results.tgz --remove-files $(ls | grep -E '\.(log|json|txt|png)$') 2>/dev/null; ls -la)
