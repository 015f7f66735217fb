#!/usr/bin/env bash
# Every GPU measurement and GPU test in one go, for one call of the lent GPU machine (see docs/PERFORMANCE.md).
# Usage on a CUDA machine from the repo root: bash bench/gpu_all.sh   (results under $OUT, default ./out)
# Needs gsplat 1.5.3 (+ jaxtyping): wheels in .whl/ are installed to /tmp/site when present.
set -uo pipefail
OUT=${OUT:-$PWD/out}; mkdir -p "$OUT"; export OUT
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export TORCH_EXTENSIONS_DIR=/tmp/torch_ext MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=9.0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"
step() { local name=$1; shift; echo "== $name"; local t0=$SECONDS; timeout "${STEP_TIMEOUT:-300}" "$@" > "$OUT/$name.log" 2>&1; echo "   rc=$? ${name} $((SECONDS-t0))s"; tail -n 25 "$OUT/$name.log"; }
for s in ${STEPS:-compile tests render model data priors train}; do
  case $s in
    compile) step compile python3 -c "import torch, gsplat; from gsplat import rasterization; m=torch.zeros(1,3,device='cuda'); m[:,2]=2; q=torch.tensor([[1.,0,0,0]],device='cuda'); print(rasterization(m,q,torch.ones(1,3,device='cuda')*.1,torch.ones(1,device='cuda'),torch.ones(1,3,device='cuda'),torch.eye(4,device='cuda')[None],torch.tensor([[[10.,0,8],[0,10,8],[0,0,1]]],device='cuda'),16,16)[0].shape)";;
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
