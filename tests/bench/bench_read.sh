#!/usr/bin/env bash
# tests/bench/bench_read.sh — single-core read rate of the Ali-CCP text
# reader beside the binary format's, on the same generated data.
#
#   tests/bench/bench_read.sh [-n IMPRESSIONS] [-r RUNS] [-d DATA_DIR] [-B BUILD_DIR]
#
# Defaults: 300,000 impressions (~100 MB of text), 3 timed passes each.
# Generates the data (funnel datagen) and its binary copy (funnel convert)
# once into DATA_DIR (default data/bench-read-N), then runs bench_read
# (tests/bench/bench_read.c): one partition through reader.h, no training,
# medians of impressions per CPU second of the one-threaded reader, and the
# ratio bin / text.  Both readers must return identical examples.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
n=300000 runs=3 data="" build=$top/build
while getopts "n:r:d:B:h" o; do
  case $o in
    n) n=$OPTARG ;; r) runs=$OPTARG ;; d) data=$OPTARG ;; B) build=$OPTARG ;;
    *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
bash "$top/launch/build.sh" "$build" >/dev/null
data=${data:-$top/data/bench-read-$n}
if [[ ! -s $data/sample_skeleton_train.csv ]]; then
  echo "bench_read: generating $n impressions into $data" >&2
  "$build/funnel" datagen --out "$data" --train "$n" --test 1000 --seed 7 2>/dev/null
fi
if ! ls "$data/bin_train"/*.fbin >/dev/null 2>&1; then
  "$build/funnel" convert --data "$data/sample_skeleton_train.csv" --common "$data/common_features_train.csv" --out "$data/bin_train" >&2
fi
echo "text: $(du -b "$data/sample_skeleton_train.csv" | cut -f1) + $(du -b "$data/common_features_train.csv" | cut -f1) bytes;" \
     "bin: $(du -cb "$data/bin_train"/*.fbin | tail -1 | cut -f1) bytes; $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
exec "$build/bench_read" --data "$data/sample_skeleton_train.csv" --common "$data/common_features_train.csv" --bin "$data/bin_train" --runs "$runs"
