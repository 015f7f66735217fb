#!/usr/bin/env bash
# One device call for the GGHead route (docs/GGHEAD.md), <= 600 s on one GPU:
#   SynthHeads pool builders (CPU + GPU, background) while gsplat's extension compiles (or unpacks from .gl/);
#   a stage profile of 30 steps with bf16 autocast and without (picks the faster); the main run for the time left
#   of BUDGET, with a contact sheet + KID against held-out identities every SNAP seconds; then fp16 weights, the
#   contact sheet (8 seeds x 4 views), an interpolation strip and the GPU seed -> animated frame benchmark in $OUT.
#     BUDGET=440 bash bench/gghead_device.sh
# RESUME=weights/gghead/resume continues the shipped generator (its state.json; D and E restart fresh). The run's
# own state comes back as resume_state.json + D.safetensors + E.safetensors (fp16): to continue it in a later call
# with D and E, put them in a carried folder as X/resume/{state.json,D,E}.safetensors with the returned
# model.safetensors as X/model.safetensors, and pass RESUME=X/resume. Commit state.json alone next to shipped weights.
# A failed main run fails the call; FALLBACK=1 then trains from scratch with fp32 per-sample rendering instead.
# GAMMA (R1 weight, default 1 = GGHead's; "auto" = StyleGAN2-ADA's 0.0002 R^2 / batch, which let D win in session 5),
# BLUR / BLUR_KIMG (EG3D's fading blur of D's inputs: sigma px, kimg); RECON / KL: the VAE warm start's weights
# (train.py's lambda_recon / lambda_kl; RECON=0, the default, is GGHead's pure GAN objective); RECON_ONLY / RECON_FADE
# (kimg): a reconstruction-only first stage, then the reconstruction weight fading out. On a resume these settings
# are the new run's (the checkpoint keeps only the network shapes). RUN (default /tmp/gg): the run's folder. Do not
# count on it surviving to the next call: in session 7 a call right after two others on the same warm machine found
# RUN=$PWD/.carry_ggrun empty (so RESUME=$RUN/main/ckpt failed and the old fallback trained from scratch).
set -uo pipefail
source bench/device_env.sh
BUDGET=${BUDGET:-440}; SNAP=${SNAP:-45}; BATCH=${BATCH:-64}; RUN=${RUN:-/tmp/gg}; mkdir -p $RUN/pool $RUN/held $OUT
export RUN; GAMMA=${GAMMA:-1}; BLUR=${BLUR:-0}; BLUR_KIMG=${BLUR_KIMG:-0}
t0=$SECONDS
LOG=$OUT/run.log
el() { echo "$((SECONDS - t0))"; }
{ nvidia-smi --query-gpu=name,memory.total --format=csv; nproc; } >> $LOG 2>&1
B="python3 -m avat3r.generate.train build-pool"
if [ "$(ls $RUN/pool | wc -l)" -ge 170 ] && [ "$(ls $RUN/held | wc -l)" -ge 8 ]; then
  echo "reusing the pool in $RUN: $(ls $RUN/pool | wc -l) chunks" >> $LOG
else
for k in 1 2 3 4 5 6 7 8; do
  OMP_NUM_THREADS=1 nice -n 10 $B --out $RUN/pool --count 110 --start-seed $((k * 10000)) --device cpu --prefix c$k > $RUN/pool_c$k.log 2>&1 &
done
for k in 1 2; do
  OMP_NUM_THREADS=1 $B --out $RUN/pool --count 250 --start-seed $((100000 + k * 10000)) --device cuda --prefix g$k > $RUN/pool_g$k.log 2>&1 &
done
OMP_NUM_THREADS=1 nice -n 10 $B --out $RUN/held --count 64 --start-seed 900000 --device cpu --prefix h > $RUN/pool_h.log 2>&1 &
fi
python3 -c "$GSPLAT_COMPILE_PY" >> $LOG 2>&1 || { echo "gsplat setup failed" >> $LOG; exit 3; }
echo "gsplat ready $(el) s; pool: $(ls $RUN/pool | wc -l) chunks" >> $LOG
if [ "${PROFILE:-1}" = 1 ]; then  # PROFILE=0 when the GPU is shared (the timings would mean nothing): bf16
# the batched gsplat render against the per-sample path, and the stage profile (bf16 and fp32/TF32)
timeout 150 python3 - >> $LOG 2>&1 <<'PY'
import json, os, torch
from avat3r.generate import GGHeadGenerator, preset
from avat3r.generate.model import render_offset
from avat3r.generate.train import TrainConfig, train, view_cameras, sample_cameras
torch.manual_seed(0)
G = GGHeadGenerator(preset("small")).cuda().eval()
for n, p in G.named_parameters():
    p.data += 0.05 * torch.randn_like(p)  # a non-trivial head (zero-init position conv)
out = G(torch.randn(4, 256, device="cuda"), G.canonical_label("cuda").expand(4, -1))
cams = sample_cameras(4, 128, torch.Generator().manual_seed(0), TrainConfig())
a = G.render_batch(out, cams)
os.environ["AVAT3R_GGHEAD_LOOP_RENDER"] = "1"
b = G.render_batch(out, cams)
v = view_cameras(128)
c1 = G.render(out, v, index=1)
del os.environ["AVAT3R_GGHEAD_LOOP_RENDER"]
c2 = G.render(out, v, index=1)
print(json.dumps({"check_batched_vs_loop_max_abs": [float((x - y).abs().max()) for x, y in zip(a + c2, b + c1)],
                  "alpha_mean": float(a[1].mean())}), flush=True)
res = {}
for amp, B in (("bf16", 64), ("off", 64)):
    tc = TrainConfig(batch=B, amp=amp, views_per_head=16, r1_gamma=0.05)
    run = os.environ["RUN"]
    p = train(f"{run}/prof_{amp}_{B}", f"{run}/pool", 1.0, tc, device="cuda", profile=25, min_heads=32)
    pm = p["profile_ms"]
    res[f"{amp}_b{B}"] = {"ms_per_step": pm, "img_s_synced": round(B * 1000 / pm["total"], 1)}
    print(json.dumps({f"profile_{amp}_b{B}": res[f"{amp}_b{B}"]}), flush=True)
json.dump(res, open(os.environ["RUN"] + "/profile.json", "w"), indent=1)
PY
echo "checks + profile rc=$? $(el) s" >> $LOG
fi
AMP=$(python3 -c "
import json; r = json.load(open('$RUN/profile.json'))
print('bf16' if r['bf16_b64']['img_s_synced'] >= 0.95 * r['off_b64']['img_s_synced'] else 'off')" 2>/dev/null || echo bf16)
MIN=$(python3 -c "print(max(0.5, ($BUDGET - $(el) - 95) / 60))")
echo "main run: amp $AMP, batch $BATCH, $MIN min ($(el) s)" >> $LOG
python3 -m avat3r.generate.train --out $RUN/main --pool $RUN/pool --heldout $RUN/held --minutes $MIN --batch $BATCH \
  --amp $AMP --r1-gamma $GAMMA --blur-sigma $BLUR --blur-fade-kimg $BLUR_KIMG \
  --lambda-recon ${RECON:-0} --lambda-kl ${KL:-0.01} --recon-only-kimg ${RECON_ONLY:-0} --recon-fade-kimg ${RECON_FADE:-0} --views-per-head 48 --min-heads 160 --snapshot-s $SNAP ${RESUME:+--resume $RESUME} >> $LOG 2>&1
rc=$?
echo "main rc=$rc $(el) s; pool $(ls $RUN/pool | wc -l) chunks" >> $LOG
if [ $rc -ne 0 ] && [ "${FALLBACK:-0}" != 1 ]; then
  echo "main run failed (rc=$rc): no fallback (FALLBACK=1 trains from scratch, fp32, per-sample rendering)" >> $LOG
  exit $rc
fi
if [ $rc -ne 0 ] && [ ! -d $RUN/main/G_ema ]; then  # a fallback: fp32, per-sample rendering
  MIN=$(python3 -c "print(max(0.3, ($BUDGET - $(el) - 60) / 60))")
  AVAT3R_GGHEAD_LOOP_RENDER=1 python3 -m avat3r.generate.train --out $RUN/main --pool $RUN/pool --minutes $MIN \
    --batch 32 --amp off --r1-gamma auto --views-per-head 16 >> $LOG 2>&1
  echo "fallback rc=$? $(el) s" >> $LOG
fi
tail -n 2 $RUN/pool_*.log >> $LOG 2>&1
python3 - >> $LOG 2>&1 <<PY
import torch
from avat3r.generate.hub import load_generator, save_generator
from avat3r.generate.train import contact_sheet, interpolation_strip, save_resume_state
import shutil
r = save_resume_state("$RUN/main/ckpt", "$RUN/resume")
for f in r.iterdir():  # flat: the device returns 8 files and counts a folder's files
    shutil.copy(f, "$OUT/" + ("resume_state.json" if f.name == "state.json" else f.name))
G = load_generator("$RUN/main/G_ema", device="cuda")
save_generator(G, "$OUT", dtype=torch.float16, extra=__import__("json").load(open("$RUN/main/G_ema/config.json")).get("training"))
contact_sheet(G, [0, 1, 2, 3, 4, 5, 6, 7], "$OUT/sheet.png", truncation=0.7, size=128)
contact_sheet(G, [8, 9, 10, 11, 12, 13, 14, 15], "$RUN/sheet_t1.png", truncation=1.0, size=128)
interpolation_strip(G, 0, 1, "$RUN/interp.png", steps=8, truncation=0.7, size=128)
print("samples written")
PY
W=weights; [ -f weights/config.json ] || W=../weights
timeout 60 python3 bench/gghead.py --device cuda --generator $RUN/main/G_ema --weights $W --repeats 10 --json $RUN/bench_gpu.json >> $LOG 2>&1
echo "bench rc=$? all done $(el) s" >> $LOG
cp $RUN/main/log.jsonl $RUN/bench_gpu.json $RUN/main/ 2>/dev/null
ls -la $OUT >> $LOG; cp $LOG $RUN/run.log
(cd $RUN && tar czf $OUT/logs.tgz run.log sheet_t1.png interp.png profile.json main/log.jsonl main/snapshots \
  main/G_ema/config.json bench_gpu.json prof_*/log.jsonl pool_*.log 2>/dev/null)
rm -f $LOG  # inside logs.tgz: 7 files come back (model, config, sheet, D, E, resume_state.json, logs.tgz)
