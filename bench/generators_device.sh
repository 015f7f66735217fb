#!/usr/bin/env bash
# One device call (<= 600 s, one GPU) that trains both generators side by side, sharing the GPU:
#   - GGHead (bench/gghead_device.sh, BUDGET=GG_S s; RESUME=weights/gghead/resume continues the shipped state);
#   - the text -> portrait model (bench/text2img_device.sh, continued from weights/text2img with INIT).
# Both are launch-bound single-process trainings, so they overlap on the H200 better than they would run in turn.
# Returns <= 8 files: gg.tar.part_* (fp16 generator, resume state, contact sheets), t2i.tar.part_* (pipeline +
# classifier, samples, bench), logs.tgz, summary.log. Carry .whl, .gl and .t2i_whl (diffusers + deps, not in the image).
#   GG_S=500 T2I_DATA_S=60 T2I_S=300 RESUME= INIT=weights/text2img bash bench/generators_device.sh
# Ran once (session 5): the GGHead half worked; the text half failed importing diffusers against a carried
# huggingface_hub 2.x. The install step was changed since (diffusers only, hub 1.x fallback) and worked when run
# inline beside the Avat3r run, but this script as a whole has not been re-run. Mind the 64 MiB carry limit.
set -uo pipefail
source bench/device_env.sh
FINAL=$OUT; S=$FINAL/summary.log; t0=$SECONDS
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >> "$S"
( OUT=/tmp/o_gg PROFILE=0 BUDGET=${GG_S:-500} bash bench/gghead_device.sh > /tmp/gg_device.log 2>&1
  echo "gghead done rc=$? at $((SECONDS - t0)) s" >> "$S" ) &
( OUT=/tmp/o_t2i LR=${T2I_LR:-3e-4} WORKERS=${T2I_WORKERS:-7} CLF_S=${CLF_S:-30} INIT=${INIT:-weights/text2img} \
  bash bench/text2img_device.sh "${T2I_DATA_S:-60}" "${T2I_S:-300}" "${T2I_IDS:-6000}" > /tmp/t2i_device.log 2>&1
  echo "text2img done rc=$? at $((SECONDS - t0)) s" >> "$S" ) &
wait
grep -h -E "main run|main rc|img_s_mean|bench rc" /tmp/o_gg/run.log >> "$S" 2>/dev/null
tail -n 3 /tmp/o_gg/run.log >> "$S" 2>/dev/null
grep -h -E "adherence|accuracy|steps_total|final_loss" /tmp/o_t2i/*.log >> "$S" 2>/dev/null
(cd /tmp && tar cf - --exclude o_gg/logs.tgz o_gg | split -b 15M - "$FINAL/gg.tar.part_")
(cd /tmp && tar cf - o_t2i | split -b 15M - "$FINAL/t2i.tar.part_")
(cd /tmp && tar czf "$FINAL/logs.tgz" gg_device.log t2i_device.log o_gg/logs.tgz 2>/dev/null)
ls -la "$FINAL" >> "$S"; cat "$S"
