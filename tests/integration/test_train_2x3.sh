# 2 servers + 3 workers: every line read by exactly one worker, AUCs beat
# the floor and stay close to a 1 + 1 run of the same seed, predict matches;
# servers of 3 threads (each table in 3 stripes) give the same predictions
# to the bit.
source "$(dirname "$0")/lib.sh"
data=$WORK/data
gen "$data" 150000 40000 12
job 2 3 "$data" "$WORK/run23" --model esmm
job 1 1 "$data" "$WORK/run11" --model esmm
job 2 3 "$data" "$WORK/run23t" --model esmm --server-threads 3
grep -q '"server_threads": 3' "$WORK/run23t/config.json" || fail "config.json lacks server_threads"
cmp -s "$WORK/run23/test_preds.csv" "$WORK/run23t/test_preds.csv" || fail "3 server threads changed the predictions"
[[ -s $WORK/run23/model/emb-0.bin && -s $WORK/run23/model/emb-1.bin ]] || fail "both shards must be exported"
[[ $(field "$WORK/run23" train_examples) == $(lines "$data/sample_skeleton_train.csv") ]] || fail "train_examples != lines of the training file"
[[ $(field "$WORK/run23" test_examples) == $(lines "$data/sample_skeleton_test.csv") ]] || fail "test_examples != lines of the test file"
at_least "$(metric "$WORK/run23" ctr auc)" 0.60 "2+3 ctr auc"
at_least "$(metric "$WORK/run23" ctcvr auc)" 0.60 "2+3 ctcvr auc"
close_to "$(metric "$WORK/run23" ctr auc)" "$(metric "$WORK/run11" ctr auc)" 0.01 "ctr auc 2+3 vs 1+1"
"$FUNNEL" predict --run "$WORK/run23" --data "$data/sample_skeleton_test.csv" --common "$data/common_features_test.csv" --out "$WORK/preds.csv"
same_preds "$WORK/preds.csv" "$WORK/run23/test_preds.csv"
echo "test_train_2x3: ok"
