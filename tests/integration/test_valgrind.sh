# funnel's own code is clean under valgrind's memcheck: a short training job
# with both ranks (a server and a worker, CURVE on, with evaluation) under
# memcheck, then `funnel predict` under memcheck.  Fails on any memory error
# or definite leak in funnel; those of Open MPI, PMIx, hwloc, libevent and
# ZeroMQ themselves are suppressed by tests/valgrind.supp (which names only
# those libraries).  Without valgrind it is installed (apt-get), or the test
# is skipped with a message when that is impossible.
source "$(dirname "$0")/lib.sh"
SUPP=$(cd "$HERE/.." && pwd)/valgrind.supp

if ! command -v valgrind >/dev/null; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    note "valgrind not found: apt-get install -y valgrind"
    { apt-get install -y valgrind || { apt-get update && apt-get install -y valgrind; }; } >"$WORK/apt.log" 2>&1 || true
  fi
  if ! command -v valgrind >/dev/null; then
    echo "test_valgrind: SKIPPED: valgrind is not installed and could not be installed (apt-get install valgrind)"
    exit 0
  fi
fi

# valgrind cannot run an ASan binary and does not know AVX-512 (which
# -march=native may emit): for those builds, a plain portable build of the
# same sources, kept beside the work dir so that reruns are incremental
bin=$FUNNEL
cache=$(dirname "$FUNNEL")/CMakeCache.txt
if [[ -f $cache ]] && grep -qE '^FUNNEL_(NATIVE|SANITIZE|FUZZ):BOOL=ON' "$cache"; then
  vgb=$(dirname "$WORK")/valgrind-build
  note "$FUNNEL is a native or sanitizer build: building a portable one in $vgb"
  (cmake -S "$HERE/../.." -B "$vgb" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DFUNNEL_NATIVE=OFF -DFUNNEL_SANITIZE=OFF -DFUNNEL_FUZZ=OFF &&
    cmake --build "$vgb" --target funnel -j "$(nproc)") >"$WORK/build.log" 2>&1 ||
    { cat "$WORK/build.log"; fail "portable build for valgrind"; }
  bin=$vgb/funnel
fi

VG=(valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
    --show-leak-kinds=definite --keep-debuginfo=yes --num-callers=40 --suppressions="$SUPP"
    --gen-suppressions=all)

# clean: every log ends with 0 errors; otherwise show what is not suppressed
clean() {
  local log
  for log in "$@"; do
    [[ -s $log ]] || fail "$log: no valgrind output"
    if ! grep -q "ERROR SUMMARY: 0 errors" "$log"; then
      grep -v '^   \|^{\|^}' "$log" | sed -n '/^==[0-9]*== [A-Z0-9]/,/^==[0-9]*== $/p' | head -150
      fail "memcheck found errors, see $log"
    fi
    note "$(basename "$log"): $(grep -o 'ERROR SUMMARY: .*' "$log")"
  done
}

data=$WORK/data
gen "$data" 3000 1000 11
run=$WORK/run
args=(--oversubscribe --bind-to none -np 2 -x OPENBLAS_NUM_THREADS=1)
[[ $(id -u) == 0 ]] && args+=(--allow-run-as-root)
set +e
timeout 600 mpirun "${args[@]}" "${VG[@]}" --log-file="$WORK/vg-train.%q{OMPI_COMM_WORLD_RANK}.log" \
  "$bin" train --servers 1 --model esmm --dim 4 --hidden 16,8 --batch 256 --timeout 600 --log-every 60 \
  --train "$data/sample_skeleton_train.csv" --common "$data/common_features_train.csv" \
  --test "$data/sample_skeleton_test.csv" --test-common "$data/common_features_test.csv" \
  --out "$run" >"$WORK/train.log" 2>&1
rc=$?
set -e
clean "$WORK/vg-train.0.log" "$WORK/vg-train.1.log"
(( rc == 0 )) || { tail -20 "$WORK/train.log"; fail "training under valgrind exited $rc"; }
[[ -f $run/model/dense.bin && -s $run/metrics.jsonl ]] || fail "training left no model or metrics"
note "train (server and worker under memcheck): clean"

set +e
timeout 300 "${VG[@]}" --log-file="$WORK/vg-predict.log" "$bin" predict --run "$run" \
  --data "$data/sample_skeleton_test.csv" --common "$data/common_features_test.csv" \
  --out "$WORK/preds.csv" >"$WORK/predict.log" 2>&1
rc=$?
set -e
clean "$WORK/vg-predict.log"
(( rc == 0 )) || { cat "$WORK/predict.log"; fail "predict under valgrind exited $rc"; }
[[ $(lines "$WORK/preds.csv") == 1001 ]] || fail "predict wrote $(lines "$WORK/preds.csv") lines, want 1001"
grep -q "All heap blocks were freed" "$WORK/vg-predict.log" || note "predict: some memory still reachable at exit (not an error)"
note "predict under memcheck: clean"
echo "test_valgrind: ok"
