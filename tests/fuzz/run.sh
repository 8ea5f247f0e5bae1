#!/usr/bin/env bash
# tests/fuzz/run.sh — builds the libFuzzer targets and fuzzes each in turn.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default 600); TARGETs are names like fuzz_wire or
# wire (default: every tests/fuzz/fuzz_*.c).  Builds with clang into
# $FUZZ_BUILD (default build-fuzz/, ASan + UBSan + libFuzzer), then runs
# each target alone (one process: the targets share the machine, not the
# cores) on a fresh copy of its seed corpus in $FUZZ_WORK/<target>/ (default
# build-fuzz/fuzz-runs/), and prints its executions, coverage and findings.
# A finding is left there as crash-*, leak-*, timeout-* or oom-*: reproduce
# it with `build-fuzz/fuzz_X FILE`, fix the code, and add the file to
# tests/fuzz/corpus/<name>/ as a regression input (ctest -L fuzz runs every
# corpus file once).  Exit status: 0 when no target found anything.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-600}
[[ $secs =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: SECONDS must be a positive integer, got '$secs'" >&2; exit 2; }
shift $(( $# > 0 ? 1 : 0 ))
build=${FUZZ_BUILD:-$top/build-fuzz}
work=${FUZZ_WORK:-$build/fuzz-runs}

# OpenBLAS (linked in through worker/) would start a spinning thread per core
export OPENBLAS_NUM_THREADS=1
command -v clang >/dev/null || { echo "run.sh: clang not found (apt-get install clang)" >&2; exit 2; }
if [[ ! -f $build/CMakeCache.txt ]]; then
  CC=clang cmake -S "$top" -B "$build" -DFUNNEL_FUZZ=ON -DFUNNEL_SANITIZE=ON >/dev/null ||
    { echo "run.sh: cmake failed" >&2; exit 2; }
fi
targets=()
if (( $# )); then
  for t in "$@"; do targets+=("fuzz_${t#fuzz_}"); done
else
  for src in "$top"/tests/fuzz/fuzz_*.c; do targets+=("$(basename "$src" .c)"); done
fi
mkdir -p "$work"
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}" >"$work/build.log" 2>&1 ||
  { tail -30 "$work/build.log"; echo "run.sh: build failed (log: $work/build.log)" >&2; exit 2; }

status=0
printf '%-16s %8s %12s %10s %8s %8s  %s\n' target seconds executions exec/s cov ft findings
for t in "${targets[@]}"; do
  name=${t#fuzz_}
  dir=$work/$t
  rm -rf "$dir"
  mkdir -p "$dir/corpus"
  if [[ -d $top/tests/fuzz/corpus/$name ]]; then cp "$top/tests/fuzz/corpus/$name/"* "$dir/corpus/"
  else echo "run.sh: $t has no seed corpus (tests/fuzz/corpus/$name/): starting from nothing" >&2; fi
  start=$(date +%s)
  set +e
  "$build/$t" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$dir/" "$dir/corpus" >"$dir/log" 2>&1
  rc=$?
  set -e
  took=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  cov=$(grep -oE '(DONE|NEW|REDUCE|pulse|INITED) +cov: [0-9]+ ft: [0-9]+' "$dir/log" | tail -1 | awk '{print $3, $5}')
  findings=$(cd "$dir" && ls -1 crash-* leak-* timeout-* oom-* slow-unit-* 2>/dev/null | tr '\n' ' ' || true)
  (( rc == 0 )) || { status=1; [[ -n $findings ]] || findings="exit $rc, see $dir/log"; }
  printf '%-16s %8s %12s %10s %8s %8s  %s\n' "$t" "$took" "${execs:-?}" "$(( ${execs:-0} / (took > 0 ? took : 1) ))" \
    "${cov% *}" "${cov#* }" "${findings:-none}"
done
exit $status
