#!/usr/bin/env bash
# One device call of a session (issue 15 "train for real", issue 16 GGHead weights), one GPU, <= 600 s:
#   - continue training the `small` preset from weights/ with the batched SynthHeads engine and the robustness
#     augmentations (bench/train_device.sh, PHASE=main) for TRAIN_S seconds, a checkpoint every 1000 steps;
#   - the learning curve: bench/fidelity.py (4 views, hold-out identities) on weights/ (during training) and on
#     every checkpoint; the full table (4, 1, 2 views + baselines) on the last checkpoint;
#   - with GGHEAD_S > 0, GGHead training beside it on the same GPU (bench/gghead_device.sh, BUDGET=GGHEAD_S).
# Returns: ckpt/ (the last checkpoint's shards), gg/ (GGHead fp16 weights), logs.tgz (everything else).
# Budget: setup ~70 s (less with .gl/torch_ext.tgz) + TRAIN_S + ~40 s + FID_TIMEOUT must stay under the 600 s
# command limit (session 4: TRAIN_S=360 + FID_TIMEOUT=100 ran past it and the logs were lost).
#   TRAIN_S=280 GGHEAD_S=360 bash bench/retrain_device.sh
# AUGMENT (train_device.sh) picks the augmentations, e.g. AUGMENT='{"preset":"real","color":false,"prob":0.5}';
# SHIPPED_FID=0 skips re-measuring the shipped weights.
set -uo pipefail
source bench/device_env.sh
TRAIN_S=${TRAIN_S:-280}; GGHEAD_S=${GGHEAD_S:-0}; MAIN=${MAIN:-/tmp/avat3r_main}; C=${CURVE:-/tmp/curve}; mkdir -p "$C"
TOUT=${TRAINOUT:-/tmp/trainout}  # CURVE / TRAINOUT / MAIN: separate folders let two runs share a GPU (bench/retrain_ab_device.sh)
t0=$SECONDS
python3 -c "$GSPLAT_COMPILE_PY" > "$C/compile.log" 2>&1 || { echo "gsplat setup failed"; tail -5 "$C/compile.log"; exit 1; }
echo "gsplat ready $((SECONDS - t0)) s"
# keep the built extension for later calls (carry it as .gl/torch_ext.tgz; bench/device_env.sh unpacks it)
[ -f .gl/torch_ext.tgz ] || [ -f ../.gl/torch_ext.tgz ] || tar czf "$OUT/torch_ext.tgz" -C /tmp torch_ext
fid() {  # $1 weights dir, $2 label, $3 views
  timeout "${FID_TIMEOUT:-110}" python3 bench/fidelity.py --checkpoint "$1" --device cuda --views "$3" \
    --out "$C/$2" --label "$2" > "$C/$2.log" 2>&1; echo "fidelity $2 rc=$? $((SECONDS - t0)) s"
}
if [ "$GGHEAD_S" -gt 0 ]; then
  (mkdir -p "$OUT/gg" /tmp/ggout && OUT=/tmp/ggout BUDGET=$GGHEAD_S bash bench/gghead_device.sh > "$C/gghead.log" 2>&1
   mv /tmp/ggout/config.json /tmp/ggout/model.safetensors "$OUT/gg/" 2>/dev/null; cp -r /tmp/ggout "$C/gghead_out"
   echo "gghead done $((SECONDS - t0)) s") &
fi
[ "${SHIPPED_FID:-1}" = 1 ] && fid weights step_shipped 4 &
OUT=$TOUT PHASE=main TRAIN_S=$TRAIN_S MAIN=$MAIN TRAIN_EXTRA="--set keep_checkpoints=0 ${TRAIN_EXTRA:-}" \
  bash bench/train_device.sh > "$C/train_device.log" 2>&1
echo "training done $((SECONDS - t0)) s"; grep -E "rc=|samples/s|it/s" "$C/train_device.log" | tail -3
mkdir -p "$OUT/ckpt"; cp "$TOUT"/ckpt/tensors-*.safetensors "$OUT/ckpt/" 2>/dev/null
cp "$TOUT"/ckpt/trainer.json "$TOUT"/results.tgz "$C/" 2>/dev/null
last=$(ls -d "$MAIN"/checkpoints/step_* 2>/dev/null | tail -1)
for c in "$MAIN"/checkpoints/step_*; do
  [ -d "$c" ] || continue; s=$(basename "$c")
  python3 -m avat3r.train.export "$c" "$C/w_$s" > "$C/export_$s.log" 2>&1 || continue
  if [ "$c" = "$last" ]; then fid "$C/w_$s" "$s" 4,1,2 & else fid "$C/w_$s" "$s" 4 & fi
done
wait
tar czf "$OUT/logs.tgz" --exclude 'w_step_*' -C "$(dirname "$C")" "$(basename "$C")"; ls -la "$OUT" "$OUT"/*/
grep -h "dB\|response" "$C"/*/fidelity.md 2>/dev/null | head -40
