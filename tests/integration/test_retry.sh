# Lost replies: the servers of a 2 + 2 job drop every 23rd reply to a
# pull or push (FUNNEL_FAULT_DROP_REPLY, a test-only fault injection;
# export and checkpoint requests are not retried, so their replies are
# never dropped).  The workers
# send the unanswered requests again after their retry interval, the
# servers answer a retried push from their record instead of applying it
# twice, and the job ends with the same AUCs, to the bit, as a run
# without faults.  A server that never answers still ends the job within
# --timeout, naming it (test_failures covers a killed one).
source "$(dirname "$0")/lib.sh"
data=$WORK/data
gen "$data" 40000 10000 31
flags=(--model esmm --no-preds --timeout 8)
job 2 2 "$data" "$WORK/clean" "${flags[@]}" 2>"$WORK/clean.log" || { cat "$WORK/clean.log"; fail "clean run"; }
FUNNEL_FAULT_DROP_REPLY=23 job 2 2 "$data" "$WORK/lossy" "${flags[@]}" 2>"$WORK/lossy.log" ||
  { cat "$WORK/lossy.log"; fail "run with dropped replies"; }
retries=$(grep -c "sending the request again" "$WORK/lossy.log" || true)
(( retries > 0 )) || { cat "$WORK/lossy.log"; fail "no request was sent again"; }
again=$(tail -n 1 "$WORK/lossy/metrics.jsonl" | grep -o '"retried_pushes":[0-9]*' | cut -d: -f2 | paste -sd+)
note "$retries requests sent again; pushes answered from the servers' records: $(( again ))"
(( again > 0 )) || fail "no push was retried (so none was deduplicated)"
for k in ctr cvr ctcvr; do
  [[ $(metric "$WORK/lossy" $k auc) == $(metric "$WORK/clean" $k auc) ]] ||
    fail "$k auc with dropped replies $(metric "$WORK/lossy" $k auc) vs clean $(metric "$WORK/clean" $k auc)"
done
note "same AUCs to the bit as the clean run"
echo "test_retry: ok"
