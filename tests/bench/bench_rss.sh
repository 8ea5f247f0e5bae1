#!/usr/bin/env bash
# tests/bench/bench_rss.sh — peak resident memory (VmHWM) of every process
# of convert, train (text and bin) and predict on one Ali-CCP world.
#
#   tests/bench/bench_rss.sh -d WORLD_DIR -o WORK_DIR [-b FUNNEL] [-s SERVERS] [-w WORKERS] [-k] [-- TRAIN_FLAGS...]
#
# WORLD_DIR holds sample_skeleton_{train,test}.csv and common_features_
# {train,test}.csv (funnel datagen); WORK_DIR receives the binary copies
# (bin-train/, bin-test/), the runs (run-text/, run-bin/), the predictions,
# the logs and rss.tsv.  Steps, one at a time (nothing else of ours runs
# beside them):
#   convert   funnel convert of the training set (text -> bin); the test set
#             is converted too (its line is test-convert)
#   train     launch/funnel-local -s S -w W (default 1 + 1) from text, then
#             from bin, 1 epoch unless TRAIN_FLAGS say otherwise
#   predict   funnel predict of the text run's model on the test set, from
#             text and from bin
# How it measures: every process runs under GNU time (`/usr/bin/time -f
# %M`), whose figure is the process's ru_maxrss from wait4() — the kernel's
# high-water mark of its resident set (VmHWM) at exit, so no peak between
# two samples is missed.  The MPI ranks are started through a wrapper
# (WORK_DIR/rss-wrap.sh given to funnel-local as its binary) that names
# its output by OMPI_COMM_WORLD_RANK: ranks 0..S-1 are servers, the rest
# workers.  rss.tsv: step, process, rank, peak RSS in KiB, wall seconds.
# The lead worker's "training data:" line gives the size of the Ali-CCP
# common-features table it holds (md5s, feature entries, MB); it is printed
# at the end, with the final AUCs of both runs (equal when the text has no
# malformed lines: both formats split the examples alike, lines.h).
# -k keeps the binary copies and runs (default: removes them at the end,
# keeping the logs and rss.tsv).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
funnel=$top/build/funnel world="" work="" servers=1 workers=1 keep=0
usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while getopts "d:o:b:s:w:kh" o; do
  case $o in
    d) world=$OPTARG ;; o) work=$OPTARG ;; b) funnel=$OPTARG ;;
    s) servers=$OPTARG ;; w) workers=$OPTARG ;; k) keep=1 ;; *) usage ;;
  esac
done
shift $((OPTIND - 1))
[[ ${1:-} == -- ]] && shift
[[ -n $world && -n $work ]] || usage
[[ -x /usr/bin/time ]] || { echo "bench_rss: needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 2; }
[[ -x $funnel ]] || { echo "bench_rss: $funnel is not built" >&2; exit 2; }
funnel=$(cd "$(dirname "$funnel")" && pwd)/$(basename "$funnel")
for f in sample_skeleton_train sample_skeleton_test common_features_train common_features_test; do
  [[ -s $world/$f.csv ]] || { echo "bench_rss: $world/$f.csv missing" >&2; exit 2; }
done
mkdir -p "$work"
work=$(cd "$work" && pwd)
world=$(cd "$world" && pwd)
tsv=$work/rss.tsv
printf 'step\tprocess\trank\tpeak_rss_kib\tseconds\n' >"$tsv"

# one process under GNU time: step, process name, log file, command...
timed() {
  local step=$1 proc=$2 log=$3; shift 3
  /usr/bin/time -f '%M %e' -o "$work/.time" "$@" >"$log" 2>&1 || { echo "bench_rss: $step failed, see $log" >&2; tail -5 "$log" >&2; exit 1; }
  read -r kib secs <"$work/.time"
  printf '%s\t%s\t-\t%s\t%s\n' "$step" "$proc" "$kib" "$secs" >>"$tsv"
}

# the MPI ranks: the wrapper funnel-local starts instead of funnel
wrap=$work/rss-wrap.sh
cat >"$wrap" <<EOF
#!/usr/bin/env bash
# started by mpirun for each rank: funnel under GNU time, output named by rank
exec /usr/bin/time -f '%M %e' -o "\$RSS_OUT.rank\${OMPI_COMM_WORLD_RANK:?not started by Open MPI}" "$funnel" "\$@"
EOF
chmod +x "$wrap"

train() { # step name, run dir, train flags...
  local step=$1 run=$2; shift 2
  rm -rf "$run" "$work/$step.time".rank*
  RSS_OUT=$work/$step.time "$top/launch/funnel-local" -b "$wrap" -s "$servers" -w "$workers" -- \
    --seed 11 --out "$run" "$@" "${extra[@]}" >"$work/$step.log" 2>&1 || { echo "bench_rss: $step failed, see $work/$step.log" >&2; tail -5 "$work/$step.log" >&2; exit 1; }
  for f in "$work/$step.time".rank*; do
    local r=${f##*.rank} kib secs proc
    read -r kib secs <"$f"
    proc=worker; (( r < servers )) && proc=server
    printf '%s\t%s\t%s\t%s\t%s\n' "$step" "$proc" "$r" "$kib" "$secs" >>"$tsv"
  done
}
extra=("$@")

echo "bench_rss: $world, $servers server(s) + $workers worker(s), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)" >&2
rm -rf "$work/bin-train" "$work/bin-test"
timed convert convert "$work/convert.log" "$funnel" convert --data "$world/sample_skeleton_train.csv" \
  --common "$world/common_features_train.csv" --out "$work/bin-train"
timed test-convert convert "$work/test-convert.log" "$funnel" convert --data "$world/sample_skeleton_test.csv" \
  --common "$world/common_features_test.csv" --out "$work/bin-test"
train train-text "$work/run-text" --format aliccp --train "$world/sample_skeleton_train.csv" \
  --common "$world/common_features_train.csv" --test "$world/sample_skeleton_test.csv" --test-common "$world/common_features_test.csv"
train train-bin "$work/run-bin" --format bin --train "$work/bin-train" --test "$work/bin-test" \
  --test-truth "$world/truth_test.csv"
timed predict-text predict "$work/predict-text.log" "$funnel" predict --run "$work/run-text" --format aliccp \
  --data "$world/sample_skeleton_test.csv" --common "$world/common_features_test.csv" --out "$work/preds-text.csv"
timed predict-bin predict "$work/predict-bin.log" "$funnel" predict --run "$work/run-text" --format bin \
  --data "$work/bin-test" --out "$work/preds-bin.csv"
cmp -s "$work/preds-text.csv" "$work/preds-bin.csv" || echo "bench_rss: note: text and bin predictions differ" >&2
for r in text bin; do
  cp "$work/run-$r/metrics.jsonl" "$work/metrics-$r.jsonl"
  echo "final AUCs from $r: $(tail -n 1 "$work/metrics-$r.jsonl" | sed 's/,"truth":.*//' |
    grep -o '"\(ctr\|cvr\|ctcvr\)":{[^}]*"auc":[0-9.e-]*' | sed 's/":{.*"auc":/ /; s/^"//' | tr '\n' ' ')" >&2
done

# the common-features table of the training set (lead worker's log line)
common=$(grep -o 'aliccp, [0-9]* common feature sets[^)]*' "$work/train-text.log" | head -1 || true)
echo "common-features table (train, per worker of a text run): ${common:-not reported by this build}" >&2
column -t -s $'\t' "$tsv"
if (( ! keep )); then rm -rf "$work/bin-train" "$work/bin-test" "$work/run-text" "$work/run-bin" "$work"/preds-*.csv; fi
rm -f "$work/.time"
