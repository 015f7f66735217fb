#!/usr/bin/env bash
# Fidelity of several weights folders on the lent GPU, all in parallel (one call).
#   WEIGHTS="weights .carry_w/w_5517" VIEWS=4,1,2 bash bench/eval_device.sh
# Leaves $OUT/fidelity_<name>.json (+ the logs in $OUT/eval_logs.tgz).
set -uo pipefail
source bench/device_env.sh
WEIGHTS=${WEIGHTS:-weights}; VIEWS=${VIEWS:-4,1,2}; L=/tmp/evlogs; mkdir -p $L
t0=$SECONDS
python3 -c "$GSPLAT_COMPILE_PY" > $L/compile.log 2>&1 || { echo "gsplat setup failed"; tail -5 $L/compile.log; }
echo "gsplat ready $((SECONDS - t0)) s"
for w in $WEIGHTS; do
  n=$(basename "$w")
  (timeout ${FID_TIMEOUT:-300} python3 bench/fidelity.py --checkpoint "$w" --device cuda --views "$VIEWS" \
     --out /tmp/fid_$n --label "$n" > $L/$n.log 2>&1; echo "$n rc=$? $((SECONDS - t0)) s"
   cp /tmp/fid_$n/fidelity.json "$OUT/fidelity_$n.json" 2>/dev/null) &
done
wait
(cd /tmp && tar czf "$OUT/eval_logs.tgz" evlogs)
for f in "$OUT"/fidelity_*.json; do python3 -c "
import json,sys; d=json.load(open('$f')); r=list(d['runs'].values())[0]; print('$f'.split('/')[-1], json.dumps(r.get('summary', {}))[:400])"; done
