# Ali-CCP-shaped logs end to end (~870 common ids per impression, ~58
# impressions per md5): `funnel datagen --shape aliccp`, in runs of 6
# adjacent impressions per request.
#   - text, 1 server + 2 workers: the common features' table is built once
#     (one "built" line for the training file, the other worker maps it),
#     into RUN_DIR/cache; a second run with --common-cache reuses it;
#   - convert: the binary copy (parts + common.fct) is no larger than the
#     text, and the same 1 + 2 job from it gives every metric and test
#     prediction of the text job exactly;
#   - funnel predict --format bin reproduces the job's predictions;
#   - bad input: a damaged common.fct is refused naming the file and the
#     section, a table of another conversion is refused, and a skeleton md5
#     missing from the common file is counted as a malformed line, never
#     trained with zeroed common features.
source "$(dirname "$0")/lib.sh"
data=$WORK/data
gen "$data" 12000 3000 9 --shape aliccp --impressions-per-request 6
per=$(awk -F, 'NR == 1 { print $2; exit }' "$data/common_features_train.csv")
(( per > 600 )) || fail "a shaped common line has $per ids, want ~870"
note "common ids per md5: $per"

aucs() { for t in ctr cvr ctcvr; do printf '%s ' "$(metric "$1" $t auc)"; done; }
tasks() { tail -n 1 "$1/metrics.jsonl" | grep -o '"\(ctr\|cvr\|ctcvr\|cvr_entire\)":{[^}]*}'; }

job 1 2 "$data" "$WORK/text" --model esmm --seed 3 >"$WORK/text.log" 2>&1 || { tail -20 "$WORK/text.log"; fail "text 1+2"; }
built=$(grep -c "common_features_train.csv: .* built in" "$WORK/text.log")
[[ $built == 1 ]] || fail "the training file's table was built $built times by 2 workers, want once"
grep -q "common_features_train.csv: common feature table .*shared" "$WORK/text.log" || fail "the second worker did not map the built table"
ls "$WORK/text/cache/"*.fct >/dev/null || fail "no table in RUN_DIR/cache"
note "text 1+2 aucs ctr cvr ctcvr: $(aucs "$WORK/text")"

# a cache shared between runs: built by the first, mapped by the second
job 1 1 "$data" "$WORK/c1" --model ctr --common-cache "$WORK/cache" >"$WORK/c1.log" 2>&1 || fail "run with --common-cache"
job 1 1 "$data" "$WORK/c2" --model ctr --common-cache "$WORK/cache" >"$WORK/c2.log" 2>&1 || fail "second run with --common-cache"
grep -q "built in" "$WORK/c2.log" && fail "the second run built the table again"
[[ $(tasks "$WORK/c1") == $(tasks "$WORK/c2") ]] || fail "runs from a built and a reused table differ"

# the binary copy
for s in train test; do
  "$FUNNEL" convert --data "$data/sample_skeleton_$s.csv" --common "$data/common_features_$s.csv" --out "$data/bin/$s" 2>"$WORK/convert_$s.log" ||
    { cat "$WORK/convert_$s.log"; fail "convert $s"; }
done
text_bytes=$(($(stat -c %s "$data/sample_skeleton_train.csv") + $(stat -c %s "$data/common_features_train.csv")))
bin_bytes=$(du -cb "$data/bin/train/"* | tail -1 | cut -f1)
((bin_bytes <= text_bytes)) || fail "the binary copy ($bin_bytes bytes) is larger than its text ($text_bytes)"
note "$(grep -o 'bytes in.*' "$WORK/convert_train.log")"
timeout 600 "$LAUNCH" -s 1 -w 2 -b "$FUNNEL" -- --format bin --train "$data/bin/train" --test "$data/bin/test" \
  --test-truth "$data/truth_test.csv" --out "$WORK/bin" --log-every 30 --model esmm --seed 3 >"$WORK/bin.log" 2>&1 || { tail -20 "$WORK/bin.log"; fail "bin 1+2"; }
[[ -n $(tasks "$WORK/bin") && $(tasks "$WORK/text") == $(tasks "$WORK/bin") ]] ||
  fail "1+2: the metrics from text and bin differ: $(tasks "$WORK/text") vs $(tasks "$WORK/bin")"
cmp -s "$WORK/text/test_preds.csv" "$WORK/bin/test_preds.csv" || fail "1+2: test predictions from text and bin differ"
note "1+2: every metric and test prediction equal from text and bin"
"$FUNNEL" predict --run "$WORK/bin" --format bin --data "$data/bin/test" --out "$WORK/preds.csv" 2>"$WORK/predict.log" || { cat "$WORK/predict.log"; fail "predict --format bin"; }
same_preds "$WORK/preds.csv" "$WORK/bin/test_preds.csv"
"$FUNNEL" predict --run "$WORK/text" --data "$data/sample_skeleton_test.csv" --common "$data/common_features_test.csv" --out "$WORK/preds_text.csv" 2>"$WORK/predict_text.log" ||
  { cat "$WORK/predict_text.log"; fail "predict from text"; }
same_preds "$WORK/preds_text.csv" "$WORK/text/test_preds.csv"

# a damaged table: one byte of the entries flipped
cp -r "$data/bin/test" "$WORK/damaged"
python3 - "$WORK/damaged/common.fct" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[len(b) // 2] ^= 0x40
open(p, 'wb').write(b)
EOF
out=$("$FUNNEL" predict --run "$WORK/bin" --format bin --data "$WORK/damaged" --out "$WORK/x.csv" 2>&1) && fail "a damaged common.fct was accepted"
grep -q "common.fct: section .*checksum mismatch" <<<"$out" || fail "damaged table refused without naming file and section: $out"
note "damaged table: $(grep -o '[^ ]*common.fct: section.*' <<<"$out" | head -1)"
# another conversion's table
cp "$data/bin/train/common.fct" "$WORK/damaged/common.fct"
out=$("$FUNNEL" predict --run "$WORK/bin" --format bin --data "$WORK/damaged" --out "$WORK/x.csv" 2>&1) && fail "another conversion's common.fct accepted"
grep -q "another conversion" <<<"$out" || fail "a foreign table refused without the reason: $out"
# a skeleton md5 the common file does not have
mkdir -p "$WORK/miss"
cp "$data/common_features_train.csv" "$WORK/miss/"
awk -F, 'BEGIN { OFS = "," } NR == 7 { $4 = "00000000000000000000000000000000" } { print }' "$data/sample_skeleton_train.csv" >"$WORK/miss/sample_skeleton_train.csv"
timeout 600 "$LAUNCH" -s 1 -w 1 -b "$FUNNEL" -- --train "$WORK/miss/sample_skeleton_train.csv" --common "$WORK/miss/common_features_train.csv" \
  --out "$WORK/missrun" --model ctr >"$WORK/miss.log" 2>&1 || { tail -5 "$WORK/miss.log"; fail "skip mode with a missing md5"; }
grep -q "sample_skeleton_train.csv:7: malformed line skipped: md5 '0000" "$WORK/miss.log" || fail "missing md5 not reported as FILE:LINE"
[[ $(field "$WORK/missrun" train_examples) == $(($(lines "$data/sample_skeleton_train.csv") - 1)) ]] || fail "the line with a missing md5 was trained"
echo "test_shaped: ok"
