#!/usr/bin/env bash
# One device call for the single-photo lift (docs/LIFT.md): trains the lift encoder on the shipped GGHead
# (weights/gghead) for TRAIN_S seconds, writes it (config.json + model.safetensors, 11 MB fp32) to $OUT, then runs
# bench/lift.py on the GPU with it (SynthHeads hold-out novel views, timing, real portraits) and a no-encoder
# ablation on SynthHeads. Every step has a time limit; bench.json is written after each section.
#   rsync -a --delete --exclude .git --exclude weights /work/wt/lift/ /work/main/.carry_lift/
#   (portraits: copy them to .carry_lift/realdata, a transport copy never committed)
#   run (carry .carry_lift .whl .gl): cd .carry_lift && source bench/device_env.sh && export GSPLAT_COMPILE_PY &&
#       AVAT3R_REALDATA=$PWD/realdata TRAIN_S=85 bash bench/lift_device.sh
# The photo timing and the portraits need the front end's dlib on the device, which is not installed there and
# cannot be carried (face-recognition-models' 68-landmark file alone is 100 MB, over the 64 MiB carry limit): they
# are skipped and bench.json holds the SynthHeads rows (session 8), whose lift times exclude the front end.
# Since session 8 the code is on main: carry .whl .gl and a folder with the portraits (e.g. .carry_rd), then
#   AVAT3R_REALDATA=$PWD/.carry_rd TRAIN_S=85 bash bench/lift_device.sh
set -uo pipefail
[ -d .whl ] || [ ! -d ../.whl ] || ln -s ../.whl .whl
[ -n "${GSPLAT_COMPILE_PY:-}" ] || source bench/device_env.sh
TRAIN_S=${TRAIN_S:-85}; BENCH_S=${BENCH_S:-70}; ABL_S=${ABL_S:-25}
W=$([ -d weights/gghead ] && echo weights || echo ../weights)
GEN=${GEN:-$W/gghead}
LOG=$OUT/run.log
t0=$SECONDS
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; nproc; } >> $LOG 2>&1
[ -f $GEN/model.safetensors ] || { echo "no GGHead weights at $GEN: nothing to train the encoder for" >> $LOG; exit 3; }
python3 -c "$GSPLAT_COMPILE_PY" >> $LOG 2>&1 || echo "gsplat unavailable: the torch renderer is used (slow)" >> $LOG
echo "setup $((SECONDS - t0)) s" >> $LOG
timeout $((TRAIN_S + 40)) python3 -m avat3r.lift.train --generator $GEN --out /tmp/lift --seconds $TRAIN_S --device cuda \
    --batch 24 --image-size 96 --preset small --synth-identities 16 >> $LOG 2>&1
echo "train rc=$? $((SECONDS - t0)) s" >> $LOG
cp /tmp/lift/config.json /tmp/lift/model.safetensors /tmp/lift/log.jsonl $OUT/ 2>>$LOG
timeout $BENCH_S python3 bench/lift.py --device cuda --generator $GEN --encoder /tmp/lift --weights $W \
    --identities 5 --portraits 6 --out $OUT --json $OUT/bench.json >> $LOG 2>&1
echo "bench rc=$? $((SECONDS - t0)) s" >> $LOG
timeout $ABL_S python3 bench/lift.py --device cuda --generator $GEN --no-encoder --weights $W --identities 5 \
    --portraits 0 --out /tmp/abl --json $OUT/bench_noenc.json >> $LOG 2>&1
echo "ablation rc=$? all done $((SECONDS - t0)) s" >> $LOG
