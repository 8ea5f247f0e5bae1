# Malformed lines are counted and reported with file and line number, never
# silently dropped; --bad-lines stop ends the job naming the line; bad flags
# and missing files end with a one-line error, never a hang.  A truth file
# found beside the test set by its name that is not funnel's truth costs the
# run its entire-space metrics, with a warning, never the run; the same file
# given with --test-truth ends the job naming FILE:LINE.  --out of train and
# convert makes missing parent directories.
source "$(dirname "$0")/lib.sh"
data=$WORK/data
gen "$data" 20000 5000 13
skel=$data/sample_skeleton_train.csv
common=$data/common_features_train.csv
# corrupt lines 5 (click=7), 7 (an md5 the common file lacks), 100 (missing
# columns) and 2000 (feature_count lie)
nomd5=00000000000000000000000000000000
awk -F, -v nomd5=$nomd5 'BEGIN { OFS = "," }
  NR == 5 { $2 = 7 }
  NR == 7 { $4 = nomd5 }
  NR == 100 { $0 = "123,0" }
  NR == 2000 { $5 = $5 + 3 }
  { print }' "$skel" >"$skel.bad"
mv "$skel.bad" "$skel"

if job 1 2 "$data" "$WORK/run-stop" --model esmm --bad-lines stop 2>"$WORK/log-stop"; then fail "stop mode must fail"; fi
grep -q "sample_skeleton_train.csv:5: malformed line: click '7' is not 0 or 1" "$WORK/log-stop" || { cat "$WORK/log-stop"; fail "stop mode must name line 5"; }
note "stop mode: ended naming line 5"

# stop mode on the unknown md5: lines 6.. of the file, so it is line 2 there
sed -n '6,60p' "$skel" >"$WORK/md5_skeleton.csv"
set +e
timeout 120 "$LAUNCH" -s 1 -w 1 -b "$FUNNEL" -- --train "$WORK/md5_skeleton.csv" --common "$common" --out "$WORK/run-stop-md5" \
  --bad-lines stop 2>"$WORK/log-stop-md5"
rc=$?
set -e
[[ $rc != 0 && $rc != 124 ]] || { cat "$WORK/log-stop-md5"; fail "stop mode on an unknown md5: exit $rc (124 = hang)"; }
grep -q "md5_skeleton.csv:2: malformed line: md5 '$nomd5' is not in the common features file" "$WORK/log-stop-md5" ||
  { cat "$WORK/log-stop-md5"; fail "stop mode must name the line with the unknown md5"; }
note "stop mode: ended naming the line whose md5 is not in the common file"

# a malformed common line (feature_count says 2, one item), appended
printf 'badbadbadbadbadbadbadbadbadbadba,2,101\x02x\x031\n' >>"$common"
cline=$(lines "$common")
if job 1 1 "$data" "$WORK/run-stop-common" --model esmm --bad-lines stop 2>"$WORK/log-stop-common"; then fail "stop mode on a bad common line must fail"; fi
grep -q "common_features_train.csv:$cline: malformed line: feature_count says 2 but the line has 1 feature items" "$WORK/log-stop-common" ||
  { cat "$WORK/log-stop-common"; fail "stop mode must name common line $cline"; }
note "stop mode: ended naming common line $cline"

# a truth_test.csv of some other tool beside the test file
cp "$data/truth_test.csv" "$WORK/truth_good.csv"
printf 'id,label\n1,0\n' >"$data/truth_test.csv"

# skip mode, into a run directory whose parents do not exist yet
run=$WORK/runs/new/run
job 1 2 "$data" "$run" --model esmm 2>"$WORK/log" || { cat "$WORK/log"; fail "skip mode must finish"; }
for l in 5 7 100 2000; do
  grep -q "sample_skeleton_train.csv:$l: malformed line skipped" "$WORK/log" || { cat "$WORK/log"; fail "line $l not reported"; }
done
grep -q "sample_skeleton_train.csv:7: malformed line skipped: md5 '$nomd5' is not in the common features file" "$WORK/log" ||
  fail "the unknown md5 not reported as such"
grep -q "common_features_train.csv:$cline: malformed line skipped: feature_count says 2" "$WORK/log" || fail "common line $cline not reported"
grep -q "4 malformed line(s) skipped (1 with an unknown md5)" "$WORK/log" || fail "total of malformed lines not reported"
grep -q "1 malformed common line(s) skipped" "$WORK/log" || fail "total of malformed common lines not reported"
[[ $(field "$run" train_examples) == $(( $(lines "$skel") - 4 )) ]] || fail "train_examples should be the good lines"
note "skip mode: 4 bad skeleton lines (one an unknown md5) and 1 bad common line reported by file:line, the rest trained"
[[ $(grep -c "truth_test.csv:1: header is 'id,label', want sample_id,pctr,pcvr,conv.*entire-space metrics are off" "$WORK/log") == 1 ]] ||
  { grep -i truth "$WORK/log"; fail "one warning naming the truth file, its line and the reason"; }
! grep -q cvr_entire "$run/metrics.jsonl" || fail "entire-space metrics without a truth"
field "$run" final | grep -q true || fail "no final evaluation"
note "a truth_test.csv that is not a truth file: one warning, the run finished without entire-space metrics"

# the same file asked for: the job ends before training, naming it
set +e
job 1 1 "$data" "$WORK/run-truth" --model esmm --test-truth "$data/truth_test.csv" 2>"$WORK/log-truth"
rc=$?
set -e
[[ $rc != 0 && $rc != 124 ]] || { cat "$WORK/log-truth"; fail "--test-truth of a bad file: exit $rc (124 = hang)"; }
grep -q -- "--test-truth: $data/truth_test.csv:1: header is 'id,label'" "$WORK/log-truth" || { cat "$WORK/log-truth"; fail "--test-truth error lacks FILE:LINE and the reason"; }
! grep -q "trained" "$WORK/log-truth" || fail "--test-truth must fail before training"
note "--test-truth of the same file: ended naming it, line 1"

# and with the world's own truth_test.csv back, found beside: entire-space metrics on
cp "$WORK/truth_good.csv" "$data/truth_test.csv"
job 1 1 "$data" "$WORK/run-truth-good" --model esmm 2>"$WORK/log-truth-good" || { cat "$WORK/log-truth-good"; fail "run with the good truth"; }
grep -q "entire-space metrics on" "$WORK/log-truth-good" || fail "the good truth file beside the test set was not used"
[[ -n $(metric "$WORK/run-truth-good" cvr_entire auc) ]] || fail "no cvr_entire with the good truth"
note "the world's own truth_test.csv: cvr_entire auc $(metric "$WORK/run-truth-good" cvr_entire auc)"

# convert --out into directories that do not exist yet; and under a file
"$FUNNEL" convert --format aliccp --data "$data/sample_skeleton_test.csv" --common "$data/common_features_test.csv" \
  --out "$WORK/conv/nested/new/dir" 2>"$WORK/log-convert" || { cat "$WORK/log-convert"; fail "convert --out nested/new/dir"; }
[[ -s $WORK/conv/nested/new/dir/part-00000.fbin ]] || fail "convert wrote no part into nested/new/dir"
touch "$WORK/afile"
set +e
"$FUNNEL" convert --format aliccp --data "$data/sample_skeleton_test.csv" --common "$data/common_features_test.csv" \
  --out "$WORK/afile/dir" 2>"$WORK/log-convert-file"
rc=$?
set -e
[[ $rc == 1 ]] || fail "convert --out under a file: exit $rc, want 1"
grep -q "cannot create directory $WORK/afile/dir" "$WORK/log-convert-file" || { cat "$WORK/log-convert-file"; fail "convert --out under a file: not named"; }
note "convert --out: missing parents made; a file in the way named"

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
