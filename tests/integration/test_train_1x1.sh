# 1 server + 1 worker train ESMM on a generated world: AUCs beat a floor,
# every training line is used once, and `funnel predict` with the exported
# model reproduces the job's own test predictions.
source "$(dirname "$0")/lib.sh"
data=$WORK/data
gen "$data" 150000 40000 11
job 1 1 "$data" "$WORK/run" --model esmm
[[ -s $WORK/run/model/dense.bin && -s $WORK/run/model/emb-0.bin ]] || fail "model not exported"
grep -q '"endpoint":"tcp://127.0.0.1:' "$WORK/run/cluster.json" || fail "cluster.json lacks the server endpoint"
[[ $(field "$WORK/run" train_examples) == $(lines "$data/sample_skeleton_train.csv") ]] || fail "train_examples != lines of the training file"
[[ $(field "$WORK/run" test_examples) == $(lines "$data/sample_skeleton_test.csv") ]] || fail "test_examples != lines of the test file"
at_least "$(metric "$WORK/run" ctr auc)" 0.60 "ctr auc"
at_least "$(metric "$WORK/run" ctcvr auc)" 0.60 "ctcvr auc"
at_least "$(metric "$WORK/run" cvr auc)" 0.50 "cvr auc"
"$FUNNEL" predict --run "$WORK/run" --data "$data/sample_skeleton_test.csv" --common "$data/common_features_test.csv" --out "$WORK/preds.csv"
same_preds "$WORK/preds.csv" "$WORK/run/test_preds.csv"
echo "test_train_1x1: ok"
