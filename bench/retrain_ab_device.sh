#!/usr/bin/env bash
# One device call for issue 15's open question (docs/eval/learning_curve.md): why do continuations of the shipped
# weights score lower on 4 views? Two continuations from weights/ share the GPU, each bench/retrain_device.sh with
# its own folders: A with the settings of A_ENV, B with B_ENV (e.g. augmentations off vs on at the same lr), then
# each run's learning curve (fidelity on every checkpoint, 4/1/2 views on the last). Returns a.tgz and b.tgz
# (logs + curves) and each run's last checkpoint exported as weights, split into <= 15 MB parts (the device returns
# 8 files of <= 16 MB): a_weights.tgz.part-aa, -ab, ... Rejoin here with `cat a_weights.tgz.part-* | tar xz`
# (gives w_step_N/: config.json, model.safetensors, training.json). Nothing is picked here: compare the curves, then
# ship by hand. (Session 7 ran this before the weights came back: run A was better and its weights were lost.)
#   A_ENV='AUGMENT=off' B_ENV='AUGMENT={"preset":"real","color":false,"prob":0.3}' TRAIN_S=330 bash bench/retrain_ab_device.sh
#   A_ENV='LR=5e-5 BATCH=16 AUGMENT=off' B_ENV='LR=5e-5 BATCH=16 AUGMENT=off LAMBDA_EXPR=5' TRAIN_S=330 bash bench/retrain_ab_device.sh
#   (session 8's proposal: does weighting the expression region in the loss make the avatar animate?)
#   A_ENV='LR=5e-5 BATCH=16 AUGMENT=off LAMBDA_EXPR=5' B_ENV='LR=5e-5 BATCH=16 AUGMENT=off LAMBDA_EXPR=5 VIEW_DROPOUT=0.5' ...
#   (and does training on 1-3 views lift the one- and two-view figures?)
#   (session 9 ran both of these: view dropout lifted 1 and 2 views by 2.7 and 1.4 dB; the run was shipped)
#   A_ENV='LR=5e-5 BATCH=16 AUGMENT=off LAMBDA_EXPR=5 VIEW_DROPOUT=0.3' B_ENV='... LAMBDA_EXPR=0.2 EXPR_WEIGHTING=mean ...'
#   (session 10, three chained calls: better on SynthHeads, worse on real captures; docs/eval/learning_curve.md)
# A second call on a machine that is still warm RESUMES both runs from their own last checkpoints in /tmp/ab_{a,b}/main
# (optimiser state and RNG kept; bench/train_device.sh resumes whenever $MAIN has one): a continuation, not a restart
# from weights/. On a fresh machine each call starts from weights/ again.
# KEEP_WEIGHTS=N returns each run's last N exported checkpoints (~19 MB each compressed). The device returns at most
# 64 MiB in all, so with two runs only N=1 fits (session 11 asked for 2 and lost a part of run B's).
# Carry .whl and .gl (the prebuilt gsplat extension: two processes must not JIT-build it at once).
set -uo pipefail
source bench/device_env.sh
# two trainers share one GPU: return freed blocks instead of caching them per size (session 10's call 2 lost run A to
# an out-of-memory error at its first chunk while run B held 90 GiB; the hull's passes are bounded now too)
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
python3 -c "$GSPLAT_COMPILE_PY" > /tmp/compile.log 2>&1 || { echo "gsplat setup failed"; tail -5 /tmp/compile.log; exit 1; }
FINAL=$OUT
for r in a b; do
  envs=$([ $r = a ] && echo "${A_ENV:-}" || echo "${B_ENV:-}")
  (mkdir -p /tmp/ab_$r/out && env $envs OUT=/tmp/ab_$r/out MAIN=/tmp/ab_$r/main CURVE=/tmp/ab_$r/curve TRAINOUT=/tmp/ab_$r/train \
     SHIPPED_FID=0 FID_TIMEOUT=${FID_TIMEOUT:-150} TRAIN_S=${TRAIN_S:-330} bash bench/retrain_device.sh > /tmp/ab_$r/run.log 2>&1
   echo "run $r rc=$?") &
done
wait
for r in a b; do
  cp /tmp/ab_$r/out/logs.tgz /tmp/ab_$r/logs.tgz 2>/dev/null
  tar czf "$FINAL/$r.tgz" -C /tmp/ab_$r run.log logs.tgz
  w=$(ls -d /tmp/ab_$r/curve/w_step_* 2>/dev/null | tail -n "${KEEP_WEIGHTS:-1}" | xargs -r -n1 basename)
  [ -n "$w" ] && tar czf - -C /tmp/ab_$r/curve $w | split -b 15M - "$FINAL/${r}_weights.tgz.part-"
  echo "== $r (${r^^}_ENV)"; grep -h "dB\|response" /tmp/ab_$r/curve/*/fidelity.md 2>/dev/null | head -16
done
ls -la "$FINAL"
