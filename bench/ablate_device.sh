#!/usr/bin/env bash
# Issue 20 on ONE GPU: the ablations (paper Tables 2-3 and the layer order) trained side by side on the same GPU,
# from scratch, same seeds, then evaluated at the same step (= the same samples seen) by `avat3r eval --runs`.
# The multi-GPU version (one GPU per run, the main run beside them) is `PHASE=ablate bash bench/train_device.sh`.
# Every run saves weights every ABL_CKPT steps; runs share the GPU and so reach different steps in ABL_MIN minutes:
# each is evaluated at the largest step that all of them reached (`avat3r eval --same-step`).
#   ABL_MIN=5 ABL_CKPT=50 bash bench/ablate_device.sh      # carry .whl and .gl
# Runs: the named runs of avat3r/train/config.py (RUNS) plus `full_aug` = full with the robustness augmentations
# (data_options.augment="real"); every other run trains without them (the shipped recipe).
# Returns ablations.tgz: ablations.{md,json}, each run's log and summary (the common step is in ablations.json).
# Session 8 (one H200): 474 s wall, 422-448 steps per run in 300 s, evaluated at step 400 (docs/eval/ablations_gpu.md).
set -uo pipefail
source bench/device_env.sh
ABL=${ABL:-/tmp/avat3r_abl}; ABL_MIN=${ABL_MIN:-5}; ABL_CKPT=${ABL_CKPT:-50}; BATCH=${BATCH:-4}
RUNS=(${RUNS:-full no_pos_skip no_col_skip no_prior consistent_inputs interleaved cached full_aug})
LOGS=/tmp/abl_logs; mkdir -p "$LOGS"; t0=$SECONDS
python3 -c "$GSPLAT_COMPILE_PY" > "$LOGS/compile.log" 2>&1 || { echo "gsplat setup failed"; tail -5 "$LOGS/compile.log"; exit 1; }
echo "setup $((SECONDS - t0)) s"
for r in "${RUNS[@]}"; do
  if [ "$r" = full_aug ]; then args=(--run full --set run=full_aug data_options.augment=real)
  else args=(--run "$r" --set data_options.augment=off); fi
  timeout $(python3 -c "print(int($ABL_MIN*60+60))") python3 -m avat3r.train "${args[@]}" --preset small \
    --out "$ABL/$r" --max-minutes "$ABL_MIN" --batch-size "$BATCH" --lr 3e-4 --num-workers 1 --seed 0 \
    --set warmup_steps=200 keep_checkpoints=0 --checkpoint-format weights --ckpt-every "$ABL_CKPT" \
    --log-every 50 --image-every 0 --quiet > "$LOGS/abl_$r.log" 2>&1 &
done
wait
echo "trained $((SECONDS - t0)) s"
for r in "${RUNS[@]}"; do
  echo "$r: $(ls -d "$ABL/$r"/checkpoints/step_* 2>/dev/null | tail -1)" >> "$LOGS/last_steps.txt"
  cp "$ABL/$r/summary.json" "$LOGS/abl_${r}_summary.json" 2>/dev/null
done
# --same-step: every run at the largest checkpoint step all of them saved (session 8 picked it in shell, same rule)
timeout "${EVAL_S:-170}" python3 -m avat3r.eval --runs $(for r in "${RUNS[@]}"; do printf '%s ' "$ABL/$r"; done) --same-step \
  --no-faces --num-samples 12 --video-frames 12 --video-identities 2 --device cuda --out "$LOGS" --quiet > "$LOGS/abl_eval.log" 2>&1
echo "eval rc=$? $((SECONDS - t0)) s"; cat "$LOGS/ablations.md" 2>/dev/null || tail -20 "$LOGS/abl_eval.log"
tar czf "$OUT/ablations.tgz" -C /tmp abl_logs
