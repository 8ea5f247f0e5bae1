# Soak: one server, several clients doing random pulls and pushes (and a few
# malformed messages) for a bounded time (tests/tools/soak.c).  Every reply
# is checked; with SGD the final table must equal, bit for bit, the initial
# rows minus lr times the sum of the gradients sent (gradients are small
# integers times 2^-20 and lr 2^-4, so no addition ever rounds and the
# arrival order does not matter); with Adagrad (over CURVE here) only
# invariants hold.  Once every key exists the server's table_bytes must stay
# put and the process RSS grow by at most a few MiB.
#
# By hand, for minutes (the tool prints a memory sample per second):
#   build/fn_soak --clients 8 --seconds 600 --keys 1000000
#   build/fn_soak --clients 4 --seconds 300 --optimizer adam --secure
# Exit status 0: all checks passed; 1: a check failed ("FAIL: ..." lines).
source "$(dirname "$0")/lib.sh"
SOAK=$(dirname "$FUNNEL")/fn_soak
[[ -x $SOAK ]] || fail "$SOAK not built"

note "sgd, 4 clients, 8 s: exact final table"
timeout 120 "$SOAK" --clients 4 --seconds 8 --keys 50000 --optimizer sgd --seed 7 >"$WORK/sgd.out" 2>&1 || { cat "$WORK/sgd.out"; fail "soak sgd"; }
cat "$WORK/sgd.out"
grep -q "bit for bit" "$WORK/sgd.out" || fail "soak sgd: no exact final-table check"
grep -q "^soak: ok" "$WORK/sgd.out" || fail "soak sgd: no ok line"

note "adagrad over CURVE, 2 clients, 3 s: invariants"
timeout 60 "$SOAK" --clients 2 --seconds 3 --keys 20000 --optimizer adagrad --secure --seed 8 >"$WORK/adagrad.out" 2>&1 || { cat "$WORK/adagrad.out"; fail "soak adagrad"; }
cat "$WORK/adagrad.out"
grep -q "^soak: ok" "$WORK/adagrad.out" || fail "soak adagrad: no ok line"

note "sgd, 3 clients, 3 s, a server of 3 threads: exact final table"
timeout 60 "$SOAK" --clients 3 --seconds 3 --keys 30000 --optimizer sgd --server-threads 3 --seed 9 >"$WORK/striped.out" 2>&1 || { cat "$WORK/striped.out"; fail "soak striped"; }
cat "$WORK/striped.out"
grep -q "bit for bit" "$WORK/striped.out" || fail "soak striped: no exact final-table check"
grep -q "^soak: ok" "$WORK/striped.out" || fail "soak striped: no ok line"

note "usage errors exit 2"
set +e
"$SOAK" --clients 0 >/dev/null 2>&1; rc1=$?
"$SOAK" --optimizer sgdx >/dev/null 2>&1; rc2=$?
set -e
[[ $rc1 == 2 && $rc2 == 2 ]] || fail "usage errors exit $rc1, $rc2 (want 2)"
echo "test_soak: ok"
