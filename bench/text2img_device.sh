#!/usr/bin/env bash
# One device command (<= 600 s; our share was 270 s of device time): build the SynthHeads portrait data set with
# 15 CPU workers, train the attribute classifier and the text-to-portrait model on the GPU, sample a grid, run the
# adherence benchmark; weights (shards <= 15 MB), grid, logs and results go to $OUT.
#   source bench/device_env.sh && bash bench/text2img_device.sh [DATA_S] [TRAIN_S] [IDS]
# INIT=weights/text2img continues from the shipped model; WORKERS (default nproc - 1) data workers; CLF_S classifier s.
set -euo pipefail
DATA_S=${1:-45}; TRAIN_S=${2:-100}; IDS=${3:-3000}; PROMPTS=${PROMPTS:-200}
OUT=${OUT:-$PWD/out}; mkdir -p "$OUT"
if ls .t2i_whl/*.whl >/dev/null 2>&1; then  # diffusers is not in the device image (carry its wheel in .t2i_whl/)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site_t2i .t2i_whl/*.whl
  export PYTHONPATH=/tmp/site_t2i:${PYTHONPATH:-$PWD}
  # the image's huggingface_hub may be older than diffusers needs; a 1.x wheel in .t2i_whl/fallback/ (not 2.x: the
  # image's transformers, which diffusers imports through peft, refuses huggingface_hub >= 2)
  if ! python3 -c "from diffusers import UNet2DConditionModel, DiffusionPipeline" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site_t2i .t2i_whl/fallback/*.whl
  fi
  python3 -c "import diffusers, huggingface_hub; print('diffusers', diffusers.__version__, 'hub', huggingface_hub.__version__)"
fi
W=${WORKERS:-$(( $(nproc) - 1 ))}
set -o pipefail
python3 -m avat3r.text2img.train --out /tmp/t2i --identities "$IDS" --per-identity 6 --workers "$W" --render-in-workers \
  --data-seconds "$DATA_S" --seconds "$TRAIN_S" --classifier-seconds ${CLF_S:-12} --batch ${BATCH:-256} --lr ${LR:-5e-4} \
  ${PRESET:+--preset $PRESET} ${INIT:+--init $INIT} 2>&1 | grep -v -i warn | tee "$OUT/train.log"
python3 bench/text2img.py --pipeline /tmp/t2i/pipeline --classifier /tmp/t2i/classifier --prompts "$PROMPTS" \
  --out "$OUT/bench.json" 2>&1 | grep -v -i warn | tee "$OUT/bench.log"
cp /tmp/t2i/samples.png /tmp/t2i/training.json "$OUT/"
tar cf - -C /tmp/t2i pipeline classifier | split -b 15M - "$OUT/weights.tar.part_"
ls -la "$OUT"
