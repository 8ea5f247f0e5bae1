#!/usr/bin/env bash
# launch/demo.sh — the main job, from nothing: installs what is missing,
# builds, writes a small synthetic Ali-CCP world, trains ESMM with 2
# parameter servers and 2 workers on this machine, scores the test set with
# the exported model, and prints the metrics.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash launch/install-deps.sh
bash launch/build.sh
data=${DEMO_DATA:-$top/data/demo}
run=${DEMO_RUN:-$top/runs/demo}
if [[ ! -s $data/sample_skeleton_train.csv ]]; then
  ./build/funnel datagen --out "$data" --train "${DEMO_TRAIN:-500000}" --test "${DEMO_TEST:-100000}" --seed 1
fi
rm -rf "$run"
launch/funnel-local -s 2 -w 2 -- --model esmm \
  --train "$data/sample_skeleton_train.csv" --common "$data/common_features_train.csv" \
  --test "$data/sample_skeleton_test.csv" --test-common "$data/common_features_test.csv" \
  --epochs 1 --out "$run"
./build/funnel predict --run "$run" --data "$data/sample_skeleton_test.csv" \
  --common "$data/common_features_test.csv" --out "$run/predict.csv"
echo
echo "== metrics ($run/metrics.jsonl) =="
# one line per task, from the final evaluation
last=$(tail -n 1 "$run/metrics.jsonl")
last=${last%%\"truth\":*} # the model's own metrics, before the truth ceiling
for task in ctr cvr ctcvr cvr_entire; do
  obj=$(printf '%s' "$last" | grep -o "\"$task\":{[^}]*}" || true)
  [[ -n $obj ]] || continue
  get() { printf '%s' "$obj" | grep -o "\"$1\":[^,}]*" | cut -d: -f2; }
  printf '%-10s auc %-10s prauc %-10s logloss %-10s rce %-9s calibration %s\n' \
    "$task" "$(get auc)" "$(get prauc)" "$(get logloss)" "$(get rce)" "$(get calibration)"
done
printf 'throughput: %s training impressions/s (2 servers + 2 workers on one machine)\n' \
  "$(printf '%s' "$last" | grep -o '"train_examples_per_sec":[^,]*' | cut -d: -f2)"
echo "predictions: $run/predict.csv"
