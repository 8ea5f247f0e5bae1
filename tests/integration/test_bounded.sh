# Bounded-memory tables on a 2 + 2 job: with --max-rows-per-server set so
# that both servers together hold a quarter of the distinct keys, every
# server ends within its budget (and its table's resident bytes within 1.3x
# of what the budgeted rows need), rows were evicted, CTR/CTCVR AUCs stay
# within 0.01 of the unbounded run, and a second run gives the same AUCs
# to the bit (eviction is deterministic), with servers of 3 threads too
# (each table in 3 stripes; evictions pick rows by a total order).  With --admit-after 2 as well,
# keys seen once get no row.  Then a bounded, admitting run resumed from
# its last checkpoint ends exactly where the run itself ended (the
# checkpoint carries rows' use counts, the clocks and the sketch), on
# servers of 3 threads though it was written by servers of one.
source "$(dirname "$0")/lib.sh"
data=$WORK/data
gen "$data" 150000 30000 21
flags=(--model esmm --no-preds)
job 2 2 "$data" "$WORK/full" "${flags[@]}" 2>"$WORK/full.log" || { cat "$WORK/full.log"; fail "unbounded run"; }
srv() { tail -n 1 "$1/metrics.jsonl" | grep -o '"servers":\[.*\]' | grep -o "\"$2\":[0-9]*" | cut -d: -f2; }
distinct=$(( $(srv "$WORK/full" rows | paste -sd+) ))
budget=$(( distinct / 8 ))
note "unbounded: $distinct distinct keys over 2 servers; budget $budget rows per server (a quarter in all)"

job 2 2 "$data" "$WORK/lfu" "${flags[@]}" --max-rows-per-server "$budget" 2>"$WORK/lfu.log" || { cat "$WORK/lfu.log"; fail "bounded run"; }
check_budget() { # RUN
  local rows evicted
  mapfile -t rows < <(srv "$1" rows)
  mapfile -t evicted < <(srv "$1" evicted)
  mapfile -t bytes < <(srv "$1" table_bytes)
  for s in 0 1; do
    (( rows[s] <= budget )) || fail "$1: server $s holds ${rows[s]} rows, budget $budget"
    (( evicted[s] > 0 )) || fail "$1: server $s evicted nothing"
    # 16-dim Adagrad rows need 8 + 4*32 bytes
    awk -v b="${bytes[s]}" -v n="$budget" 'BEGIN { exit !(b <= 1.3 * n * 136) }' || fail "$1: server $s table holds ${bytes[s]} bytes for a budget of $budget rows"
  done
  note "$(basename "$1"): rows ${rows[*]} (budget $budget), evicted ${evicted[*]}, table bytes ${bytes[*]}"
}
check_budget "$WORK/lfu"
grep -q "overran" "$WORK/lfu.log" && fail "a step's keys overran the budget during pulls"
for k in ctr ctcvr; do close_to "$(metric "$WORK/lfu" $k auc)" "$(metric "$WORK/full" $k auc)" 0.01 "$k auc, budget (lfu) vs unbounded"; done

job 2 2 "$data" "$WORK/lfu2" "${flags[@]}" --max-rows-per-server "$budget" --server-threads 3 2>"$WORK/lfu2.log" || { cat "$WORK/lfu2.log"; fail "bounded run 2"; }
for k in ctr cvr ctcvr; do
  [[ $(metric "$WORK/lfu" $k auc) == $(metric "$WORK/lfu2" $k auc) ]] || fail "$k auc differs between two bounded runs: $(metric "$WORK/lfu" $k auc) vs $(metric "$WORK/lfu2" $k auc)"
done
[[ $(srv "$WORK/lfu" evicted) == $(srv "$WORK/lfu2" evicted) ]] || fail "evictions differ between two bounded runs"
note "two bounded runs (1 and 3 server threads): same AUCs and evictions"

job 2 2 "$data" "$WORK/lru" "${flags[@]}" --max-rows-per-server "$budget" --evict lru 2>"$WORK/lru.log" || { cat "$WORK/lru.log"; fail "lru run"; }
check_budget "$WORK/lru"
note "lru: ctr $(metric "$WORK/lru" ctr auc) ctcvr $(metric "$WORK/lru" ctcvr auc)"

flags+=(--admit-after 2 --admit-sketch-mb 1 --max-rows-per-server "$budget")
job 2 2 "$data" "$WORK/admit" "${flags[@]}" --checkpoint-every 40 --keep-checkpoints 1 2>"$WORK/admit.log" || { cat "$WORK/admit.log"; fail "admitting run"; }
mapfile -t admitted < <(srv "$WORK/admit" admitted)
mapfile -t dropped < <(srv "$WORK/admit" dropped_grads)
(( admitted[0] + admitted[1] < distinct )) || fail "--admit-after 2 admitted ${admitted[*]} of $distinct keys"
(( dropped[0] > 0 && dropped[1] > 0 )) || fail "--admit-after 2 dropped no gradients"
note "admit-after 2: admitted ${admitted[*]} of $distinct distinct keys, dropped ${dropped[*]} gradients"
for k in ctr ctcvr; do close_to "$(metric "$WORK/admit" $k auc)" "$(metric "$WORK/full" $k auc)" 0.01 "$k auc, admit-after 2 + budget vs unbounded"; done

cp -r "$WORK/admit" "$WORK/resumed"
job 2 2 "$data" "$WORK/resumed" "${flags[@]}" --checkpoint-every 40 --keep-checkpoints 1 --resume --server-threads 3 2>"$WORK/resumed.log" || { cat "$WORK/resumed.log"; fail "resume"; }
grep -q "resumed from" "$WORK/resumed.log" || fail "did not resume"
for k in ctr cvr ctcvr; do
  [[ $(metric "$WORK/resumed" $k auc) == $(metric "$WORK/admit" $k auc) ]] || fail "$k auc: resumed $(metric "$WORK/resumed" $k auc) vs the run $(metric "$WORK/admit" $k auc)"
done
[[ $(srv "$WORK/resumed" evicted) == $(srv "$WORK/admit" evicted) && $(srv "$WORK/resumed" admitted) == $(srv "$WORK/admit" admitted) ]] ||
  fail "resumed run's admissions/evictions differ: $(srv "$WORK/resumed" admitted) $(srv "$WORK/resumed" evicted) vs $(srv "$WORK/admit" admitted) $(srv "$WORK/admit" evicted)"
note "resumed from the last checkpoint: same AUCs, admissions and evictions"
echo "test_bounded: ok"
