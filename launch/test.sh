#!/usr/bin/env bash
# launch/test.sh [--sanitize] [CTEST_ARGS...] — installs what is missing,
# builds, and runs the whole test suite (unit and integration tests, through
# ctest).  --sanitize builds into build-asan with AddressSanitizer +
# UndefinedBehaviorSanitizer and runs the same suite there.  Other arguments
# go to ctest (e.g. -L unit).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
dir=$top/build opts=()
if [[ ${1:-} == --sanitize ]]; then
  shift
  dir=$top/build-asan opts=(-DFUNNEL_SANITIZE=ON)
fi
bash launch/install-deps.sh
bash launch/build.sh "$dir" ${opts[@]+"${opts[@]}"}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "$dir"
ctest --output-on-failure "$@"
