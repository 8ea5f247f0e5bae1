#!/usr/bin/env bash
# tests/bench/bench_train.sh — training throughput and AUCs of funnel
# (1 server + 1 worker, end to end from Ali-CCP text) beside the PyTorch
# reference (tests/bench/torch_esmm.py, same model, data already in
# tensors), on the same generated data, in one invocation.
#
#   tests/bench/bench_train.sh [-n TRAIN] [-t TEST] [-r RUNS] [-d DATA_DIR] [-m MODEL]
#
# Defaults: 2,000,000 training and 200,000 test impressions (CTR ~4%,
# conversions ~5% of clicks), 1 run each.  Each row of the table is the
# median over the runs; the last line is the throughput ratio.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
train=2000000 test=200000 runs=1 data="" model=esmm
while getopts "n:t:r:d:m:h" o; do
  case $o in
    n) train=$OPTARG ;; t) test=$OPTARG ;; r) runs=$OPTARG ;; d) data=$OPTARG ;; m) model=$OPTARG ;;
    *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
bash "$top/launch/install-deps.sh" python3-torch python3-numpy
bash "$top/launch/build.sh" >/dev/null
bin=$top/build/funnel
data=${data:-$top/data/bench-$train}
if [[ ! -s $data/sample_skeleton_train.csv ]]; then
  echo "bench: generating $train + $test impressions into $data" >&2
  "$bin" datagen --out "$data" --train "$train" --test "$test" --seed 7 2>/dev/null
fi
out=$(mktemp -d /tmp/funnel-bench.XXXX)
trap 'rm -rf "$out"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
args=(--train "$data/sample_skeleton_train.csv" --common "$data/common_features_train.csv"
      --test "$data/sample_skeleton_test.csv" --test-common "$data/common_features_test.csv")
# JSON of either implementation, spaces removed; the task objects before any "truth" part
pick() { tr -d ' ' <<<"$1" | grep -o "\"$2\":[^,}]*" | head -1 | cut -d: -f2; }
task() { local l; l=$(tr -d ' ' <<<"$1"); l=${l%%\"truth\":*}; grep -o "\"$2\":{[^}]*}" <<<"$l" | head -1 | grep -o '"auc":[^,}]*' | cut -d: -f2; }
for ((i = 1; i <= runs; i++)); do
  rm -rf "$out/run"
  "$top/launch/funnel-local" -s 1 -w 1 -- --model "$model" "${args[@]}" --out "$out/run" --no-preds --log-every 60 2>"$out/funnel.log" ||
    { cat "$out/funnel.log" >&2; exit 1; }
  l=$(tail -n 1 "$out/run/metrics.jsonl")
  echo "funnel $(pick "$l" train_examples_per_sec) $(pick "$l" train_seconds) $(task "$l" ctr) $(task "$l" cvr) $(task "$l" ctcvr)" >>"$out/rows"
  /usr/bin/python3 "$top/tests/bench/torch_esmm.py" "${args[@]}" --threads "$(nproc)" >"$out/torch.json" 2>"$out/torch.log" ||
    { cat "$out/torch.log" >&2; exit 1; }
  l=$(tail -n 1 "$out/torch.json")
  echo "pytorch $(pick "$l" examples_per_sec) $(pick "$l" train_seconds) $(task "$l" ctr) $(task "$l" cvr) $(task "$l" ctcvr)" >>"$out/rows"
done
echo
echo "reference $model, $train training impressions, batch 1024, 1 epoch, $runs run(s), medians; $(nproc) cores"
printf '%-22s %12s %10s %8s %8s %8s\n' implementation "examples/s" "train s" "ctr auc" "cvr auc" "ctcvr auc"
for impl in funnel pytorch; do
  grep "^$impl " "$out/rows" | awk -v impl="$impl" '
    { for (k = 2; k <= 6; k++) v[k, NR] = $k; n = NR }
    END {
      printf "%-22s", (impl == "funnel" ? "funnel 1 server+1 worker" : "pytorch (in tensors)")
      for (k = 2; k <= 6; k++) {
        for (i = 1; i <= n; i++) a[i] = v[k, i] + 0
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        m = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        printf (k == 2 ? " %12.0f" : (k == 3 ? " %10.1f" : " %8.4f")), m
      }
      printf "\n"
    }' | tee -a "$out/table"
done
awk '{ r[NR] = $(NF - 4) } END { if (r[2] > 0) printf "ratio funnel / pytorch: %.2fx examples per second\n", r[1] / r[2] }' "$out/table"
