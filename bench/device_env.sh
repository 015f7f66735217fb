# Sourced by the scripts that run on the lent GPU machine (bench/gpu_all.sh, bench/train_device.sh):
# installs the carried wheels (.whl/: gsplat 1.5.3 + jaxtyping) to /tmp/site and sets the environment.
# GSPLAT_COMPILE_PY builds gsplat's CUDA extension once (~70 s on a fresh machine): run it before starting several
# processes, whose concurrent JIT builds into one TORCH_EXTENSIONS_DIR can leave a broken .so.
OUT=${OUT:-$PWD/out}; mkdir -p "$OUT"; export OUT
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
WHL=.whl; [ -d "$WHL" ] || WHL=../.whl  # the repo root's .whl, also when run from a .carry_* folder
if [ -d /tmp/site/gsplat ]; then  # installed by an outer script of the same call
  export PYTHONPATH=/tmp/site:$PWD
elif ls "$WHL"/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHL"/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export TORCH_EXTENSIONS_DIR=/tmp/torch_ext MAX_JOBS=16 TORCH_CUDA_ARCH_LIST=9.0
# gsplat's extension built by an earlier call (.gl/torch_ext.tgz, carried, never committed): skips the ~70 s build;
# torch rebuilds it anyway if its sources or flags differ
for t in .gl/torch_ext.tgz ../.gl/torch_ext.tgz; do
  if [ -f "$t" ] && [ ! -d /tmp/torch_ext ]; then tar xzf "$t" -C /tmp && break; fi
done

# one tiny gsplat render: builds gsplat's CUDA extension (python3 -c "$GSPLAT_COMPILE_PY")
GSPLAT_COMPILE_PY="import torch; from gsplat import rasterization; c=dict(device='cuda'); m=torch.zeros(1,3,**c); m[:,2]=2; \
o=torch.ones(1,**c); print(rasterization(m, torch.tensor([[1.,0,0,0]],**c), torch.ones(1,3,**c)*.1, o, torch.ones(1,3,**c), \
torch.eye(4,**c)[None], torch.tensor([[[10.,0,8],[0,10,8],[0,0,1]]],**c), 16, 16)[0].shape)"
