#!/usr/bin/env bash
# tests/bench/shaped.sh — funnel against the PyTorch reference on logs shaped
# like the real Ali-CCP (issue 13): ~870 common ids per impression in four
# long behaviour fields, ~58 impressions per md5, ~0.5% of clicks convert.
#
#   tests/bench/shaped.sh [-n TRAIN] [-t TEST] [-r RUNS] [-k K,K] [-d DATA_DIR]
#                         [-b BUILD_DIR] [-o REPORT] [-- TRAIN_FLAGS...]
#
# For each K of -k (impressions per request: 1 = every impression draws its
# request independently, 6 = runs of ~6 adjacent impressions; default 1,6)
# it makes `funnel datagen --shape aliccp --train TRAIN --test TEST
# --impressions-per-request K --seed 11` (reused when present), converts it
# (time, bytes, impressions/s), then in RUNS interleaved rounds measures:
#   funnel 1+1 from text, end to end: mpirun start to exit, the common
#     tables' build, evaluation and export included (impressions / wall s),
#     with its per-phase worker times and server bytes per impression;
#   the PyTorch reference (tests/bench/torch_esmm.py), training only;
#   funnel 1+2 from the binary copy, with every process's peak RSS (GNU time)
#     and its AUCs beside those of the same 1+2 job from text.
# Like a user's machine: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset
# in this script's own environment (the workplace pins AVX2 kernels); the
# core OpenBLAS chose is printed.  Rows are medians over the rounds.
# Output: a Markdown section on stdout and in REPORT (default
# data/bench-shaped.md).  Exit 1 when a step failed.
set -uo pipefail
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
top=$(cd "$(dirname "$0")/../.." && pwd)
train=1000000 test=100000 runs=3 ks=1,6 data="" build=$top/build report=$top/data/bench-shaped.md
while getopts "n:t:r:k:d:b:o:h" o; do
  case $o in
    n) train=$OPTARG ;; t) test=$OPTARG ;; r) runs=$OPTARG ;; k) ks=$OPTARG ;; d) data=$OPTARG ;;
    b) build=$OPTARG ;; o) report=$OPTARG ;; *) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[[ ${1:-} == -- ]] && shift
extra=("$@")
[[ $train =~ ^[1-9][0-9]*$ && $test =~ ^[1-9][0-9]*$ && $runs =~ ^[1-9][0-9]?$ && $ks =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] ||
  { echo "shaped: -n, -t positive, -r 1..99, -k a list of K" >&2; exit 2; }
[[ -z $data ]] && data=$top/data/shaped-$train
[[ $build == /* ]] || build=$top/$build
[[ $report == /* ]] || report=$PWD/$report
bin=$build/funnel py=/usr/bin/python3
[[ -x $bin ]] || { echo "shaped: $bin missing (build first: bash launch/build.sh)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "shaped: needs GNU time (apt-get install time)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
logs=$top/data/bench-logs/shaped
mkdir -p "$logs" "$data" "$(dirname "$report")"
results=$logs/results.tsv
: >"$results"
tmp=$(mktemp -d /tmp/funnel-shaped.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failed=0
note() { printf 'shaped: %s\n' "$*" >&2; }
# every MPI rank under GNU time: peak RSS and seconds per rank
wrap=$tmp/rss-wrap.sh
printf '#!/bin/sh\nexec /usr/bin/time -f "%%M %%e" -o "$RSS_OUT.rank${OMPI_COMM_WORLD_RANK:?}" "%s" "$@"\n' "$bin" >"$wrap"
chmod +x "$wrap"

# run NAME LOG CMD...: runs it, notes a failure
run() {
  local name=$1 log=$2
  shift 2
  local t0
  t0=$(date +%s.%N)
  if ! "$@" >"$log" 2>&1; then
    note "$name FAILED (log $log):"; tail -n 12 "$log" | sed 's/^/    /' >&2; failed=1
    printf 'fail\t%s\n' "$name" >>"$results"; return 1
  fi
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f\n", b - a }' >"$log.wall"
}
rss_of() { local m="" f; for f in "$1".rank*; do m+="$(cut -d' ' -f1 "$f") "; done; echo "$m"; }

for K in ${ks//,/ }; do
  w=$data/k$K
  if [[ ! -s $w/sample_skeleton_test.csv || $(wc -l <"$w/sample_skeleton_train.csv" 2>/dev/null) != "$train" ]]; then
    rm -rf "$w"
    note "generating the K=$K world into $w"
    run "datagen-k$K" "$logs/datagen-k$K.log" "$bin" datagen --shape aliccp --train "$train" --test "$test" --impressions-per-request "$K" \
      --seed 11 --out "$w" || continue
  fi
  if [[ ! -e $w/bin/.complete ]]; then
    rm -rf "$w/bin"
    run "convert-k$K" "$logs/convert-k$K.log" /usr/bin/time -f "%M %e" -o "$logs/convert-k$K.time" "$bin" convert --format aliccp \
      --data "$w/sample_skeleton_train.csv" --common "$w/common_features_train.csv" --out "$w/bin/train" || continue
    run "convert-test-k$K" "$logs/convert-test-k$K.log" "$bin" convert --format aliccp \
      --data "$w/sample_skeleton_test.csv" --common "$w/common_features_test.csv" --out "$w/bin/test" || continue
    touch "$w/bin/.complete"
  fi
  if [[ -s $logs/convert-k$K.time ]]; then
    printf 'convert\t%s\t%s\t%s\t%s\t%s\n' "$K" "$(cut -d' ' -f2 "$logs/convert-k$K.time")" "$(cut -d' ' -f1 "$logs/convert-k$K.time")" \
      "$(($(stat -c %s "$w/sample_skeleton_train.csv") + $(stat -c %s "$w/common_features_train.csv")))" \
      "$(du -cb "$w/bin/train/"*.fbin "$w/bin/train/common.fct" | tail -1 | cut -f1)" >>"$results"
  fi
  text=(--train "$w/sample_skeleton_train.csv" --common "$w/common_features_train.csv"
        --test "$w/sample_skeleton_test.csv" --test-common "$w/common_features_test.csv")
  for ((i = 1; i <= runs; i++)); do
    out=$tmp/text-$K-$i
    if run "funnel-text-k$K#$i" "$logs/text-k$K-$i.log" "$top/launch/funnel-local" -s 1 -w 1 -b "$bin" -- --model esmm "${text[@]}" \
         --out "$out" --no-preds --log-every 60 "${extra[@]}"; then
      printf 'text\t%s\t%s\t%s\t%s\n' "$K" "$i" "$(cat "$logs/text-k$K-$i.log.wall")" "$(tail -n 1 "$out/metrics.jsonl")" >>"$results"
      [[ $i == 1 ]] && printf 'core\t%s\n' "$(grep -o 'towers: .*' "$logs/text-k$K-$i.log" | head -1)" >>"$results"
    fi
    rm -rf "$out"
    if run "pytorch-k$K#$i" "$logs/torch-k$K-$i.log" /usr/bin/time -f "%M %e" -o "$logs/torch-k$K-$i.time" \
         "$py" "$top/tests/bench/torch_esmm.py" "${text[@]}" --threads "$(nproc)"; then
      printf 'torch\t%s\t%s\t%s\t%s\n' "$K" "$i" "$(cut -d' ' -f1 "$logs/torch-k$K-$i.time")" "$(grep '^{' "$logs/torch-k$K-$i.log" | tail -n 1)" >>"$results"
    fi
  done
  # 1 server + 2 workers: from the binary copy with peak RSS, and from text
  out=$tmp/bin12-$K
  rm -f "$tmp/rss.rank"*
  if RSS_OUT=$tmp/rss run "funnel-bin12-k$K" "$logs/bin12-k$K.log" "$top/launch/funnel-local" -s 1 -w 2 -b "$wrap" -- --model esmm \
       --format bin --train "$w/bin/train" --test "$w/bin/test" --test-truth "$w/truth_test.csv" --out "$out" --no-preds --log-every 60 "${extra[@]}"; then
    printf 'bin12\t%s\t%s\t%s\t%s\n' "$K" "$(cat "$logs/bin12-k$K.log.wall")" "$(rss_of "$tmp/rss")" "$(tail -n 1 "$out/metrics.jsonl")" >>"$results"
  fi
  out=$tmp/text12-$K
  rm -f "$tmp/rss.rank"*
  if RSS_OUT=$tmp/rss run "funnel-text12-k$K" "$logs/text12-k$K.log" "$top/launch/funnel-local" -s 1 -w 2 -b "$wrap" -- --model esmm \
       "${text[@]}" --out "$out" --no-preds --log-every 60 "${extra[@]}"; then
    printf 'text12\t%s\t%s\t%s\t%s\n' "$K" "$(cat "$logs/text12-k$K.log.wall")" "$(rss_of "$tmp/rss")" "$(tail -n 1 "$out/metrics.jsonl")" >>"$results"
  fi
  rm -rf "$tmp/bin12-$K" "$tmp/text12-$K"
done

"$py" - "$results" "$train" "$test" "$runs" "$(git -C "$top" describe --always --dirty 2>/dev/null)" >"$report" <<'PY'
import json, statistics, sys, time
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
train, test, runs, commit = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
med = lambda xs: statistics.median(xs) if xs else None
def f(x, fmt="{:,.0f}"): return "—" if x is None else fmt.format(x)
ks = sorted({int(r[1]) for r in rows if r[0] in ("text", "torch", "convert", "bin12")})
core = next((r[1] for r in rows if r[0] == "core"), "?")
out = ["### Ali-CCP-shaped worlds (issue 13)", "",
       "%s, commit `%s`, %s training + %s test impressions per world (`funnel datagen --shape aliccp --impressions-per-request K --seed 11`), "
       "ESMM reference model, batch 1024, 1 epoch; every row the median of %s round(s). %s." %
       (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), commit, f"{train:,}", f"{test:,}", runs, core.replace("towers: ", "funnel's towers: ")), ""]
out += ["| K | implementation | impressions/s | vs PyTorch | CTR AUC | CVR AUC | CTCVR AUC | peak RSS MB | target |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
notes, phases = [], []
for k in ks:
    T = [json.loads(r[4]) for r in rows if r[0] == "text" and int(r[1]) == k]
    Tw = [float(r[3]) for r in rows if r[0] == "text" and int(r[1]) == k]
    P = [(int(r[3]), json.loads(r[4])) for r in rows if r[0] == "torch" and int(r[1]) == k]
    t_eps = med([train / w for w in Tw])
    p_eps = med([p["examples_per_sec"] for _, p in P])
    auc = lambda runs_, t: med([x.get(t, {}).get("auc") for x in runs_ if x.get(t, {}).get("auc") is not None])
    ratio = t_eps / p_eps if t_eps and p_eps else None
    tgt = "≥ 3x: **%s**" % ("PASS" if ratio and ratio >= 3 else "FAIL") if ratio else ""
    dauc = [auc(T, t) - auc([p for _, p in P], t) for t in ("ctr", "ctcvr") if auc(T, t) is not None and auc([p for _, p in P], t) is not None]
    if dauc: tgt += "; CTR, CTCVR AUC ≥ PyTorch − 0.005: **%s** (min Δ %+.4f)" % ("PASS" if min(dauc) >= -0.005 else "FAIL", min(dauc))
    out.append("| %d | funnel 1+1, text, end to end | %s | %s | %s | %s | %s | | %s |" % (k, f(t_eps), f(ratio, "{:.2f}x"),
               f(auc(T, "ctr"), "{:.4f}"), f(auc(T, "cvr"), "{:.4f}"), f(auc(T, "ctcvr"), "{:.4f}"), tgt))
    out.append("| %d | PyTorch reference, training only | %s | 1.00x | %s | %s | %s | %s | |" % (k, f(p_eps), f(auc([p for _, p in P], "ctr"), "{:.4f}"),
               f(auc([p for _, p in P], "cvr"), "{:.4f}"), f(auc([p for _, p in P], "ctcvr"), "{:.4f}"), f(med([m / 1024 for m, _ in P]), "{:.0f}")))
    for name, tag in (("bin12", "funnel 1+2, binary, end to end"), ("text12", "funnel 1+2, text, end to end")):
        R = [r for r in rows if r[0] == name and int(r[1]) == k]
        if not R: continue
        r = R[-1]; m = json.loads(r[4]); rss = [int(x) / 1024 for x in r[3].split()]
        wrk = max(rss[1:]) if len(rss) > 1 else None
        tg = ""
        if name == "bin12":
            tg = "every worker ≤ 256 MB: **%s**" % ("PASS" if wrk is not None and wrk <= 256 else "FAIL")
            X = [json.loads(x[4]) for x in rows if x[0] == "text12" and int(x[1]) == k]
            if X:
                same = all(X[-1].get(t, {}).get("auc") == m.get(t, {}).get("auc") for t in ("ctr", "cvr", "ctcvr"))
                tg += "; AUCs equal the text 1+2 run's: **%s**" % ("PASS" if same else "FAIL")
        out.append("| %d | %s | %s | | %s | %s | %s | server %.0f, workers %s | %s |" % (k, tag, f(train / float(r[2])),
                   f(m.get("ctr", {}).get("auc"), "{:.4f}"), f(m.get("cvr", {}).get("auc"), "{:.4f}"), f(m.get("ctcvr", {}).get("auc"), "{:.4f}"),
                   rss[0], " / ".join("%.0f" % x for x in rss[1:]), tg))
    if T:
        ws = T[-1].get("worker0_seconds", {}); s = T[-1].get("servers", [{}])
        b = sum(x.get("bytes_in", 0) + x.get("bytes_out", 0) for x in s)
        kp = sum(x.get("rows_pulled", 0) for x in s) / max(1, sum(x.get("pulls", 0) for x in s))
        phases.append("| %d | %s | %.0f | %s |" % (k, " / ".join("%.1f" % ws.get(p, 0) for p in ("data", "pull", "towers", "push", "allreduce")),
                      b / train, f(kp)))
    C = [r for r in rows if r[0] == "convert" and int(r[1]) == k]
    if C:
        c = C[-1]; secs, kib, tb, bb = float(c[2]), int(c[3]), int(c[4]), int(c[5])
        notes.append("| %d | %.1f | %s | %.0f | %.0f | %.0f%% | %.0f | %s |" % (k, secs, f(train / secs), tb / 1e6, bb / 1e6, 100 * bb / tb, kib / 1024,
                     "≤ text and ≥ 100k/s: **%s**" % ("PASS" if bb <= tb and train / secs >= 1e5 else "FAIL")))
out += ["", "Worker 0's training time by phase, seconds (funnel 1+1 text, last round), the server's bytes (in + out, every pull and push, evaluation included) per training impression and keys per pull:", "",
        "| K | data / pull / towers / push / allreduce | bytes / impression | keys / pull |", "|---|---|---:|---:|"] + phases
out += ["", "`funnel convert` of the training set (text → binary: part files + the common-feature table):", "",
        "| K | seconds | impressions/s | text MB | binary MB | binary / text | peak RSS MB | target |", "|---|---:|---:|---:|---:|---:|---:|---|"] + notes
fails = [r[1] for r in rows if r[0] == "fail"]
if fails: out += ["", "Steps that failed (logs in data/bench-logs/shaped/): " + ", ".join(fails)]
print("\n".join(out))
PY
cat "$report"
exit $failed
