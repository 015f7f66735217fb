#!/usr/bin/env bash
# One device call for the GGHead route (docs/GGHEAD.md): builds a SynthHeads pool (GPU + CPU builders in the
# background) while gsplat compiles, a 20 s smoke run, then the main run resumed from the smoke checkpoint for the
# time left of BUDGET seconds, samples (contact sheet, interpolation), and the GPU seed -> avatar benchmark.
set -uo pipefail
# device_env.sh installs the wheels from ./.whl: run from a carried copy (.carry_gghead) the wheels sit one level
# up (seen 2026-12-01: without this link gsplat was missing and training fell back to the torch renderer)
[ -d .whl ] || [ ! -d ../.whl ] || ln -s ../.whl .whl
source bench/device_env.sh
python3 -c "import gsplat" 2>/dev/null || { echo "gsplat is not importable: stop (no torch-renderer training)"; exit 3; }
BUDGET=${BUDGET:-420}; RUN=/tmp/gg; mkdir -p $RUN/pool
t0=$SECONDS
LOG=$OUT/run.log
{ nvidia-smi --query-gpu=name,memory.total --format=csv; nproc; } >> $LOG 2>&1
python3 -m avat3r.generate.train build-pool --out $RUN/pool --count 400 --device cuda --prefix g >> $RUN/pool_gpu.log 2>&1 &
OMP_NUM_THREADS=4 python3 -m avat3r.generate.train build-pool --out $RUN/pool --count 64 --start-seed 500000 --device cpu --prefix c >> $RUN/pool_cpu.log 2>&1 &
python3 -c "$GSPLAT_COMPILE_PY" >> $LOG 2>&1 || { echo "gsplat setup failed" >> $LOG; }
echo "compile done $((SECONDS - t0)) s; pool: $(ls $RUN/pool | wc -l) chunks" >> $LOG
python3 -m avat3r.generate.train --out $RUN/smoke --pool $RUN/pool --minutes 0.33 --preset small --batch 32 >> $LOG 2>&1
echo "smoke rc=$? $((SECONDS - t0)) s" >> $LOG
MIN=$(python3 -c "print(max(0.5, ($BUDGET - ($SECONDS - $t0) - 75) / 60))")
echo "main run: $MIN min" >> $LOG
python3 -m avat3r.generate.train --out $RUN/main --pool $RUN/pool --minutes $MIN --resume $RUN/smoke/ckpt >> $LOG 2>&1
echo "main rc=$? $((SECONDS - t0)) s; pool $(ls $RUN/pool | wc -l) chunks" >> $LOG
tail -n 3 $RUN/pool_gpu.log $RUN/pool_cpu.log >> $LOG 2>&1
# fp16 copy for the 16 MB per-file limit of the device's $OUT (the model is ~24 MB in fp32)
python3 -c "from avat3r.generate.hub import load_generator, save_generator; import torch; \
save_generator(load_generator('$RUN/main/G_ema'), '$OUT', dtype=torch.float16)" >> $LOG 2>&1
cat $RUN/smoke/log.jsonl $RUN/main/log.jsonl > $OUT/log.jsonl 2>>$LOG
python3 - >> $LOG 2>&1 <<PY
from avat3r.generate.hub import load_generator
from avat3r.generate.train import contact_sheet, interpolation_strip
G = load_generator("$RUN/main/G_ema", device="cuda")
contact_sheet(G, [0, 1, 2, 3, 4, 5, 6, 7], "$OUT/sheet.png", truncation=0.7, size=128)
interpolation_strip(G, 0, 1, "$OUT/interp.png", steps=8, truncation=0.7, size=128)
print("samples written")
PY
timeout 60 python3 bench/gghead.py --device cuda --generator $RUN/main/G_ema --weights "$([ -d weights ] && echo weights || echo ../weights)" --repeats 5 --json $OUT/bench_gpu.json >> $LOG 2>&1
echo "all done $((SECONDS - t0)) s" >> $LOG
