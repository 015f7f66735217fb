#!/usr/bin/env bash
# The shipped-weights training session on a lent multi-GPU machine (docs/TRAINING.md, "Shipped weights").
#   PHASE=ablate: the ablation runs (from scratch, round-robin over ABL_GPUS, ABL_WORKERS loaders each) are trained and evaluated
#                 while the main run trains with DDP on MAIN_GPUS;
#   PHASE=main:   the main run on all GPUs.
# The main run resumes from $MAIN (a machine kept warm between calls) or else starts from INIT (exported
# weights: ./weights, else ../weights as seen from a .carry_* folder). Its newest checkpoint (compact, shards
# <= 15 MiB) and a tgz of logs/results are left in $OUT (at most 8 files).
# Data: the batched SynthHeads engine (on by default on CUDA, avat3r/data/engine.py) with the robustness
# augmentations AUGMENT (default "real": every switch of avat3r/data/augment.py; "off" for none).
#   PHASE=main TRAIN_S=420 bash bench/train_device.sh     # train the small preset for 420 s (or MAIN_MIN=7)
#   BENCH_ENGINE=1 ...: first measure the data engine at the paper's sizes (~50 s; results in results.tgz)
set -uo pipefail
source bench/device_env.sh
PHASE=${PHASE:-main}; MAIN=${MAIN:-/tmp/avat3r_main}; ABL=${ABL:-/tmp/avat3r_abl}
INIT=${INIT:-$( [ -f weights/config.json ] && echo weights || echo ../weights )}
# BATCH (per GPU, default 4) and LR set the main run's batch and peak learning rate; LAMBDA_EXPR > 0 weights the
# pixels the target expression changes in the L1 term (TrainConfig.lambda_expression; EXPR_WEIGHTING=mean weighs each
# view's region by its mean, whatever its size: TrainConfig.expression_weighting); VIEW_DROPOUT in [0, 1] trains
# that share of steps on 1..V-1 input views (TrainConfig.view_dropout). CKPT_EVERY: the main run's checkpoint interval
# in steps (default 1000).
MAIN_MIN=${MAIN_MIN:-7.0}; ABL_MIN=${ABL_MIN:-5.5}; LR=${LR:-3e-4}; AUGMENT=${AUGMENT:-real}
[ -n "${TRAIN_S:-}" ] && MAIN_MIN=$(python3 -c "print(round($TRAIN_S / 60, 3))")
NGPU=$(nvidia-smi -L | wc -l)
LOGS=$OUT/logs; mkdir -p "$LOGS"
{ nvidia-smi --query-gpu=name,memory.total --format=csv; nproc; df -h /dev/shm; } > "$LOGS/machine.txt" 2>&1
t0=$SECONDS
python3 -c "$GSPLAT_COMPILE_PY" > "$LOGS/compile.log" 2>&1 || { echo "gsplat setup failed"; tail -20 "$LOGS/compile.log"; exit 1; }
echo "setup $((SECONDS - t0)) s"
if [ "${BENCH_ENGINE:-0}" = 1 ]; then  # optional, ~50 s: the data engine at the paper's sizes and with augmentations
  timeout 120 python3 bench/data_engine.py --runs paper/off,small/real --pool 16 --seconds 3 --no-old --no-train \
    --out "$LOGS" > "$LOGS/bench_engine.log" 2>&1; echo "engine bench rc=$? $((SECONDS - t0)) s"
fi

main_run() {  # $1: comma-separated GPU ids
  local gpus=$1 n; n=$(echo "$1" | tr ',' '\n' | wc -l)
  local start=(--init-from "$INIT")
  [ -f "$MAIN/checkpoints/latest.json" ] && start=(--resume auto)
  CUDA_VISIBLE_DEVICES=$gpus timeout $(python3 -c "print(int($MAIN_MIN*60+90))") \
    torchrun --standalone --nproc_per_node="$n" -m avat3r.train --named-run full --preset small --out "$MAIN" \
    --max-minutes "$MAIN_MIN" --batch-size "${BATCH:-4}" --lr "$LR" --set warmup_steps=200 --checkpoint-format compact \
    --ckpt-every "${CKPT_EVERY:-1000}" --log-every 100 --image-every 1000 --set data_options.augment="$AUGMENT" ${LAMBDA_EXPR:+--set lambda_expression=$LAMBDA_EXPR} ${EXPR_WEIGHTING:+--set expression_weighting=$EXPR_WEIGHTING} ${VIEW_DROPOUT:+--set view_dropout=$VIEW_DROPOUT} ${TRAIN_EXTRA:-} --quiet "${start[@]}" \
    >> "$LOGS/main.log" 2>&1
  echo "main rc=$? $((SECONDS - t0)) s"
}

if [ "$PHASE" = ablate ]; then
  MAIN_GPUS=${MAIN_GPUS:-0,1}; ABL_GPUS=(${ABL_GPUS:-2 3})
  RUNS=(${RUNS:-full no_pos_skip no_col_skip no_prior consistent_inputs interleaved})
  main_run "$MAIN_GPUS" &
  pids=(); k=0
  for r in "${RUNS[@]}"; do
    g=${ABL_GPUS[$((k % ${#ABL_GPUS[@]}))]}; k=$((k + 1))
    CUDA_VISIBLE_DEVICES=$g timeout $(python3 -c "print(int($ABL_MIN*60+90))") python3 -m avat3r.train --run "$r" \
      --preset small --out "$ABL/$r" --max-minutes "$ABL_MIN" --batch-size 4 --lr 3e-4 --num-workers "${ABL_WORKERS:-4}" \
      --set warmup_steps=200 --checkpoint-format weights --ckpt-every 0 --log-every 100 --image-every 0 --quiet \
      > "$LOGS/abl_$r.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  echo "ablations trained $((SECONDS - t0)) s"
  CUDA_VISIBLE_DEVICES=${ABL_GPUS[0]} timeout 150 python3 -m avat3r.eval --runs $(for r in "${RUNS[@]}"; do echo "$ABL/$r"; done) \
    --no-faces --num-samples 12 --video-frames 12 --video-identities 2 --device cuda --out "$LOGS" --quiet \
    > "$LOGS/abl_eval.log" 2>&1
  echo "ablation eval rc=$? $((SECONDS - t0)) s"; cat "$LOGS/ablations.md" 2>/dev/null
  for r in "${RUNS[@]}"; do cp "$ABL/$r/summary.json" "$LOGS/abl_${r}_summary.json" 2>/dev/null; done
  wait
else
  main_run "$(seq -s, 0 $((NGPU - 1)))"
fi
grep -E "resumed|run full|budget|checkpoint" "$LOGS/main.log" | tail -5
cp "$MAIN/summary.json" "$LOGS/main_summary.json" 2>/dev/null; cat "$LOGS/main_summary.json" 2>/dev/null
last=$(ls -d "$MAIN"/checkpoints/step_* 2>/dev/null | tail -1)
# the device returns at most 8 files: the shards and trainer.json (resuming without the RNG files is fine)
if [ -n "$last" ]; then mkdir -p "$OUT/ckpt" && cp "$last"/tensors-*.safetensors "$last"/trainer.json "$OUT/ckpt/"; fi
(cd "$OUT" && tar czf results.tgz logs $(ls -d "$MAIN"/tb 2>/dev/null) 2>/dev/null && rm -rf logs; ls -la "$OUT" "$OUT/ckpt")
