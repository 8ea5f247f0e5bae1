# A ZeroMQ client that is not part of the job (no key; a wrong key) sends
# well-formed pulls and pushes to a server of a running job: it gets no
# reply and changes nothing: the job's results equal a run without it.
# (A wrong server key fails the CURVE handshake itself; the ZAP handler
# behind it refuses any client key but the job's.)
source "$(dirname "$0")/lib.sh"
INTRUDER=$(dirname "$FUNNEL")/fn_intruder
data=$WORK/data
gen "$data" 150000 20000 15
job 2 1 "$data" "$WORK/clean" --model esmm --no-preds
job 2 1 "$data" "$WORK/attacked" --model esmm --no-preds 2>"$WORK/attacked.log" &
pid=$!
for _ in $(seq 1 200); do [[ -s $WORK/attacked/cluster.json ]] && break; sleep 0.1; done
ep=$(grep -o '"endpoint":"[^"]*"' "$WORK/attacked/cluster.json" | head -1 | cut -d'"' -f4)
[[ -n $ep ]] || { kill "$pid"; fail "no endpoint in cluster.json"; }
note "attacking $ep"
"$INTRUDER" "$ep" plain 3 >"$WORK/plain.out" || { kill "$pid"; cat "$WORK/plain.out"; fail "a client without keys got replies"; }
"$INTRUDER" "$ep" wrongkey 3 >"$WORK/wrong.out" || { kill "$pid"; cat "$WORK/wrong.out"; fail "a client with a wrong key got replies"; }
note "no key: $(cat "$WORK/plain.out"); wrong key: $(cat "$WORK/wrong.out")"
wait "$pid" || { cat "$WORK/attacked.log"; fail "attacked job failed"; }
for k in ctr cvr ctcvr; do
  [[ $(metric "$WORK/clean" $k auc) == $(metric "$WORK/attacked" $k auc) ]] || fail "$k auc differs: $(metric "$WORK/clean" $k auc) vs $(metric "$WORK/attacked" $k auc)"
done
note "results identical to the run without the intruder (ctr auc $(metric "$WORK/attacked" ctr auc))"
echo "test_intruder: ok"
