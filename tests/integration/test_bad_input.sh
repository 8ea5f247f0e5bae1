# Malformed lines are counted and reported with file and line number, never
# silently dropped; --bad-lines stop ends the job naming the line; bad flags
# and missing files end with a one-line error, never a hang.
source "$(dirname "$0")/lib.sh"
data=$WORK/data
gen "$data" 20000 5000 13
skel=$data/sample_skeleton_train.csv
# corrupt lines 5 (click=7), 100 (missing columns) and 2000 (feature_count lie)
awk -F, 'BEGIN { OFS = "," }
  NR == 5 { $2 = 7 }
  NR == 100 { $0 = "123,0" }
  NR == 2000 { $5 = $5 + 3 }
  { print }' "$skel" >"$skel.bad"
mv "$skel.bad" "$skel"
job 1 2 "$data" "$WORK/run" --model esmm 2>"$WORK/log" || { cat "$WORK/log"; fail "skip mode must finish"; }
for l in 5 100 2000; do
  grep -q "sample_skeleton_train.csv:$l: malformed line skipped" "$WORK/log" || { cat "$WORK/log"; fail "line $l not reported"; }
done
grep -q "3 malformed line(s) skipped" "$WORK/log" || fail "total of malformed lines not reported"
[[ $(field "$WORK/run" train_examples) == $(( $(lines "$skel") - 3 )) ]] || fail "train_examples should be the good lines"
note "skip mode: 3 bad lines reported by file:line, the rest trained"

if job 1 2 "$data" "$WORK/run-stop" --model esmm --bad-lines stop 2>"$WORK/log-stop"; then fail "stop mode must fail"; fi
grep -q "sample_skeleton_train.csv:5: malformed line: click '7' is not 0 or 1" "$WORK/log-stop" || { cat "$WORK/log-stop"; fail "stop mode must name line 5"; }
note "stop mode: ended naming line 5"

expect_usage() { # expect_usage PATTERN ARGS...: exit 2 with PATTERN on stderr
  local pat=$1; shift
  set +e; timeout 60 "$FUNNEL" "$@" 2>"$WORK/err" >/dev/null; local rc=$?; set -e
  [[ $rc == 2 ]] || fail "funnel $* exited $rc, want 2"
  grep -q -- "$pat" "$WORK/err" || { cat "$WORK/err"; fail "funnel $*: message lacks '$pat'"; }
}
expect_usage "--batch must be an integer in \[1, 1048576\], got '0'" train --train x --common y --out z --batch 0
expect_usage "unknown flag '--bogus'" train --bogus 1
expect_usage "--model must be one of" train --train x --common y --out z --model nope
expect_usage "--common is required" train --train x --out z
expect_usage "--out is required" predict --run r --data d --common c
expect_usage "--ctr" datagen --out "$WORK/x" --ctr 2
note "bad flags: one-line errors, exit 2"

set +e
timeout 120 "$LAUNCH" -s 1 -w 1 -b "$FUNNEL" -- --train "$WORK/nope.csv" --common "$data/common_features_train.csv" --out "$WORK/run-missing" 2>"$WORK/log-missing"
rc=$?
set -e
[[ $rc != 0 && $rc != 124 ]] || fail "missing training file: exit $rc (124 = hang)"
grep -q "nope.csv: cannot open" "$WORK/log-missing" || { cat "$WORK/log-missing"; fail "missing file not named"; }
note "missing input file: named, job ended"
echo "test_bad_input: ok"
