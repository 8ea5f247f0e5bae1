# tests/integration/lib.sh — shared by the integration tests (sourced).
# Each test is called as: bash test_X.sh FUNNEL_BINARY WORK_DIR
set -euo pipefail
FUNNEL=${1:?funnel binary}
WORK=${2:?work dir}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAUNCH="$HERE/../../launch/funnel-local"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
rm -rf "$WORK"
mkdir -p "$WORK"

fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "-- $*"; }

# gen DIR TRAIN TEST SEED [datagen flags...]
gen() {
  local dir=$1 tr=$2 te=$3 seed=$4
  shift 4
  "$FUNNEL" datagen --out "$dir" --train "$tr" --test "$te" --seed "$seed" "$@" 2>"$dir.log" || { cat "$dir.log"; fail "datagen"; }
}

# job SERVERS WORKERS DATA RUN [train flags...]: a real mpirun job, bounded in time
job() {
  local s=$1 w=$2 data=$3 run=$4
  shift 4
  timeout 600 "$LAUNCH" -s "$s" -w "$w" -b "$FUNNEL" -- \
    --train "$data/sample_skeleton_train.csv" --common "$data/common_features_train.csv" \
    --test "$data/sample_skeleton_test.csv" --test-common "$data/common_features_test.csv" \
    --out "$run" --log-every 30 "$@"
}

# metric RUN TASK KEY: a number from the last line of RUN/metrics.jsonl
metric() {
  tail -n 1 "$1/metrics.jsonl" | grep -o "\"$2\":{[^}]*}" | head -1 | grep -o "\"$3\":[^,}]*" | cut -d: -f2
}

# top-level number of the last metrics line
field() { tail -n 1 "$1/metrics.jsonl" | grep -o "\"$2\":[^,}]*" | head -1 | cut -d: -f2; }

# at_least VALUE FLOOR WHAT
at_least() {
  awk -v v="$1" -v f="$2" 'BEGIN { exit !(v != "" && v != "null" && v + 0 >= f + 0) }' || fail "$3 = $1, floor $2"
  note "$3 = $1 (floor $2)"
}

# close_to A B TOL WHAT
close_to() {
  awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }' || fail "$4: $1 vs $2 (tolerance $3)"
  note "$4: $1 vs $2 (tolerance $3)"
}

# same_preds A.csv B.csv: same header, ids and order, empty columns alike, values within 1e-6
same_preds() {
  [[ $(head -1 "$1") == "sample_id,pctr,pcvr,pctcvr" ]] || fail "$1: bad header"
  [[ $(wc -l <"$1") == $(wc -l <"$2") ]] || fail "$1 and $2 differ in length"
  paste -d, "$1" "$2" | awk -F, 'NR > 1 {
      if ($1 != $5) { print "row " NR ": sample ids " $1 " vs " $5; bad = 1; exit }
      for (k = 2; k <= 4; k++) {
        if (($k == "") != ($(k + 4) == "")) { print "row " NR ": column " k " empty in one file only"; bad = 1; exit }
        d = $k - $(k + 4); if (d < 0) d = -d; if (d > m) m = d
      }
    } END { if (bad) exit 1; if (m > 1e-6) { print "max difference " m; exit 1 } print "max difference " m + 0 }' \
    || fail "predictions $1 and $2 differ"
}

lines() { wc -l <"$1" | tr -d ' '; }
