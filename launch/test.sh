#!/usr/bin/env bash
# launch/test.sh — installs what is missing, builds, and runs the whole test
# suite (unit and integration tests, through ctest).  Extra arguments go to
# ctest (e.g. -L unit).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash launch/install-deps.sh
bash launch/build.sh "$top/build"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "$top/build"
ctest --output-on-failure "$@"
