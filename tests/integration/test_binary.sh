# The binary format end to end: `funnel convert` of a generated world (the
# training set into 3 parts), then the same jobs from text and from bin.
#   1 server + 1 worker: one partition reads the same examples in the same
#     order from either format, so the runs must agree exactly — every
#     metric and every test prediction (this is what catches a decoding
#     difference that AUC tolerances would hide);
#   1 server + 2 workers: both formats give worker p of W the examples
#     [N*p/W, N*(p+1)/W) (lines.h, binfmt.h), so from this clean file the
#     runs agree exactly too — every metric and test prediction;
#     `funnel predict --format bin` reproduces the bin job's predictions.
# Also: --common with bin and a --fields other than convert's are refused.
source "$(dirname "$0")/lib.sh"
data=$WORK/data
gen "$data" 30000 8000 5
convert() { "$FUNNEL" convert --data "$data/sample_skeleton_$1.csv" --common "$data/common_features_$1.csv" --out "$data/bin_$1" "${@:2}" 2>"$WORK/convert_$1.log" || { cat "$WORK/convert_$1.log"; fail "convert $1"; }; }
convert train --rows-per-part 12000
convert test
[[ $(ls "$data/bin_train" | grep -c '\.fbin$') == 3 ]] || fail "convert --rows-per-part 12000 of 30000 rows: want 3 parts"
note "$(grep -o 'bytes in.*' "$WORK/convert_train.log")"

# binjob SERVERS WORKERS RUN [train flags...]
binjob() {
  local s=$1 w=$2 run=$3
  shift 3
  timeout 600 "$LAUNCH" -s "$s" -w "$w" -b "$FUNNEL" -- --format bin --train "$data/bin_train" --test "$data/bin_test" \
    --test-truth "$data/truth_test.csv" --out "$run" --log-every 30 "$@"
}
aucs() { for t in ctr cvr ctcvr; do printf '%s ' "$(metric "$1" $t auc)"; done; }

job 1 1 "$data" "$WORK/text11" --model esmm --seed 3
binjob 1 1 "$WORK/bin11" --model esmm --seed 3
[[ $(field "$WORK/bin11" train_examples) == $(lines "$data/sample_skeleton_train.csv") ]] || fail "bin train_examples != lines of the training file"
[[ $(field "$WORK/bin11" test_examples) == $(lines "$data/sample_skeleton_test.csv") ]] || fail "bin test_examples != lines of the test file"
note "1+1 aucs ctr cvr ctcvr: text $(aucs "$WORK/text11")| bin $(aucs "$WORK/bin11")"
tasks() { tail -n 1 "$1/metrics.jsonl" | grep -o '"\(ctr\|cvr\|ctcvr\|cvr_entire\)":{[^}]*}'; }
[[ -n $(tasks "$WORK/bin11") && $(tasks "$WORK/text11") == $(tasks "$WORK/bin11") ]] ||
  fail "1+1: the metrics from text and bin differ: $(tasks "$WORK/text11") vs $(tasks "$WORK/bin11")"
cmp -s "$WORK/text11/test_preds.csv" "$WORK/bin11/test_preds.csv" || fail "1+1: test predictions from text and bin differ"
note "1+1: every metric and test prediction equal"

job 1 2 "$data" "$WORK/text12" --model esmm --seed 3
binjob 1 2 "$WORK/bin12" --model esmm --seed 3
[[ $(field "$WORK/bin12" train_examples) == $(field "$WORK/text12" train_examples) ]] || fail "1+2: train_examples differ"
[[ $(field "$WORK/bin12" test_examples) == $(field "$WORK/text12" test_examples) ]] || fail "1+2: test_examples differ"
[[ -n $(tasks "$WORK/bin12") && $(tasks "$WORK/text12") == $(tasks "$WORK/bin12") ]] ||
  fail "1+2: the metrics from text and bin differ: $(tasks "$WORK/text12") vs $(tasks "$WORK/bin12")"
cmp -s "$WORK/text12/test_preds.csv" "$WORK/bin12/test_preds.csv" || fail "1+2: test predictions from text and bin differ"
note "1+2: every metric and test prediction equal"
note "text 1+1 vs 1+2 ctr auc: $(metric "$WORK/text11" ctr auc) vs $(metric "$WORK/text12" ctr auc)"
"$FUNNEL" predict --run "$WORK/bin12" --format bin --data "$data/bin_test" --out "$WORK/preds.csv" 2>"$WORK/predict.log" || { cat "$WORK/predict.log"; fail "predict --format bin"; }
same_preds "$WORK/preds.csv" "$WORK/bin12/test_preds.csv"

# refusals, with a reason
out=$("$FUNNEL" predict --run "$WORK/bin12" --format bin --data "$data/bin_test" --common "$data/common_features_test.csv" --out "$WORK/x.csv" 2>&1) && fail "predict: bin with --common accepted"
grep -q "common" <<<"$out" || fail "predict: no reason given for refusing --common: $out"
out=$(timeout 120 "$LAUNCH" -s 1 -w 1 -b "$FUNNEL" -- --format bin --train "$data/bin_train" --fields 101,205 --out "$WORK/bad" 2>&1) && fail "train: --fields other than convert's accepted"
grep -q "converted with --fields aliccp" <<<"$out" || fail "train: --fields mismatch refused without the reason: $out"
echo "test_binary: ok"
