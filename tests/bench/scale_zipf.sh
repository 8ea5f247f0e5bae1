#!/usr/bin/env bash
# tests/bench/scale_zipf.sh — the scale test: a generated stream with
# Zipf-distributed keys and over 100 million distinct keys, trained by S
# servers under a row budget; reports every server's rows, admissions,
# evictions, table bytes and peak resident memory against its budget.
#
#   tests/bench/scale_zipf.sh [-n IMPRESSIONS] [-s ZIPF_S] [-S SERVERS] [-w WORKERS]
#                             [-f FRACTION] [-a ADMIT_AFTER] [-o OUT_DIR] [-b FUNNEL_BUILD_DIR]
#
# Defaults: 6,500,000 impressions of 23 fields (vocab 1e9 per field,
# s 1.01), 4 servers, 1 worker, each server's budget a quarter (-f 0.25)
# of the distinct keys it would own unbounded.  The distinct keys are
# counted exactly first (tests/tools/zipf_count.c).  Budget of a server in
# bytes: the budgeted rows x the bytes a row needs x 1.3 (the table's
# stated bound) + the resident memory of an idle server (measured by a
# run on 2,000 impressions).  Writes OUT_DIR/summary.md and prints it.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
n=6500000 s=1.01 S=4 W=1 frac=0.25 admit=0 out=/tmp/funnel-scale build=$top/build
while getopts "n:s:S:w:f:a:o:b:h" o; do
  case $o in
    n) n=$OPTARG ;; s) s=$OPTARG ;; S) S=$OPTARG ;; w) W=$OPTARG ;; f) frac=$OPTARG ;; a) admit=$OPTARG ;;
    o) out=$OPTARG ;; b) build=$OPTARG ;;
    *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done
[[ -x $build/funnel && -x $build/fn_zipf_count ]] || { echo "scale_zipf: build first (launch/build.sh; $build/funnel, fn_zipf_count)" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$out"
spec="n=$n,s=$s,vocab=1e9,seed=1,world=1"
test_spec="n=100000,s=$s,vocab=1e9,seed=99,world=1"

echo "scale: counting the distinct keys of $spec" >&2
count=$("$build/fn_zipf_count" "$spec" "$S")
echo "$count" >"$out/count.json"
distinct=$(grep -o '"distinct_keys":[0-9]*' <<<"$count" | cut -d: -f2)
maxshare=$(grep -o '"per_server":\[[0-9,]*' <<<"$count" | grep -o '[0-9]*' | sort -n | tail -1)
budget=$(awk -v m="$maxshare" -v f="$frac" 'BEGIN { printf "%d", m * f }')
echo "scale: $distinct distinct keys; budget $budget rows per server" >&2

train() { # RUN SPEC [flags]
  local run=$1 sp=$2
  shift 2
  "$top/launch/funnel-local" -s "$S" -w "$W" -b "$build/funnel" -- --format zipf --train "$sp" --test "$test_spec" \
    --out "$run" --no-preds --log-every 30 "$@"
}
echo "scale: idle-server baseline" >&2
train "$out/baseline" "n=2000,s=$s,vocab=1e9,seed=1,world=1" >"$out/baseline.log" 2>&1
flags=(--max-rows-per-server "$budget")
((admit > 0)) && flags+=(--admit-after "$admit")
echo "scale: training $n impressions, $S servers + $W worker(s), ${flags[*]}" >&2
t0=$SECONDS
# sample the servers' resident memory while it runs (the final peak_rss,
# VmHWM, covers the whole run too; this gives the curve)
train "$out/run" "$spec" "${flags[@]}" >"$out/run.log" 2>&1 &
job=$!
: >"$out/rss.tsv"
while kill -0 "$job" 2>/dev/null; do
  for p in $(pgrep -f "funnel train --servers $S --format zipf --train $spec"); do
    r=$(tr '\0' '\n' </proc/$p/environ 2>/dev/null | grep '^OMPI_COMM_WORLD_RANK=' | cut -d= -f2) || continue
    [[ -n $r ]] && ((r < S)) && printf '%d\t%d\t%s\n' $((SECONDS - t0)) "$r" "$(awk '/^VmRSS/ {print $2 * 1024}' /proc/$p/status 2>/dev/null)" >>"$out/rss.tsv"
  done
  sleep 5
done
wait "$job" || { tail -20 "$out/run.log"; echo "scale: training failed" >&2; exit 1; }
secs=$((SECONDS - t0))
python3 - "$out" "$distinct" "$budget" "$secs" "$S" <<'PY'
import json, sys
out, distinct, budget, secs, S = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
last = lambda p: json.loads(open(p).read().strip().splitlines()[-1])
run, base = last(out + "/run/metrics.jsonl"), last(out + "/baseline/metrics.jsonl")
count = json.load(open(out + "/count.json"))
sampled = {}
for line in open(out + "/rss.tsv"):
    t, r, v = line.split("\t")
    if v.strip(): sampled[int(r)] = max(sampled.get(int(r), 0), int(v))
L = []
P = L.append
P("# Scale test: a Zipf stream of %s distinct keys on %d servers" % (format(distinct, ","), S))
P("")
P("Stream `%s` (23 fields), %s training impressions, %s key draws; test: 100,000 impressions of another seed." % (
  count["spec"], format(count["impressions"], ","), format(count["draws"], ",")))
P("Budget: `--max-rows-per-server %s` = %.0f%% of the largest server's share of the distinct keys; "
  "trained in %d s (%s impressions/s)." % (format(budget, ","), 100.0 * budget / max(count["per_server"]), secs,
  format(int(run["train_examples_per_sec"]), ",")))
P("")
P("| server | distinct keys it owns | rows held | admitted | evicted | table MB | row need MB | peak RSS MB | idle RSS MB | budget MB | within |")
P("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
ok = True
for s in run["servers"]:
    r = s["rank"]
    b0 = next(x for x in base["servers"] if x["rank"] == r)
    need = s["row_need_bytes"] / max(s["rows"], 1)
    limit = budget * need * 1.3 + b0["peak_rss"]
    peak = max(s["peak_rss"], sampled.get(r, 0))
    within = peak <= limit and s["rows"] <= budget
    ok &= within
    P("| %d | %s | %s | %s | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %s |" % (r, format(count["per_server"][r], ","),
      format(s["rows"], ","), format(s["admitted"], ","), format(s["evicted"], ","), s["table_bytes"] / 1e6,
      budget * need / 1e6, peak / 1e6, b0["peak_rss"] / 1e6, limit / 1e6, "yes" if within else "**NO**"))
P("")
P("AUC on the test stream: CTR %.4f, CVR %.4f, CTCVR %.4f." % (run["ctr"]["auc"], run["cvr"]["auc"], run["ctcvr"]["auc"]))
P("")
P("Every server within its budget for the whole run: %s (peak RSS = the larger of VmHWM at the end and the 5-s samples)." % ("yes" if ok else "NO"))
open(out + "/summary.md", "w").write("\n".join(L) + "\n")
print("\n".join(L))
sys.exit(0 if ok else 1)
PY
