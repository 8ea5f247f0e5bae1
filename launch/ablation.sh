#!/usr/bin/env bash
# launch/ablation.sh — the seed study's ablation grid in one command.
#
#   launch/ablation.sh -d DATA_DIR -o REPORT_DIR [-p PRESETS] [-r SEEDS]
#                      [-s SERVERS] [-w WORKERS] [-e EVAL_EVERY] [-- TRAIN_FLAGS...]
#
# Trains every preset (default: all) with every seed (default 1,2,3) as a
# distributed job (default 2 servers + 2 workers) on DATA_DIR's Ali-CCP files
# (sample_skeleton_{train,test}.csv, common_features_{train,test}.csv; with
# truth_test.csv beside them, as `funnel datagen` writes, the entire-space
# metrics are added; a truth_test.csv that does not load is said once and
# the entire-space columns are NA), then writes into REPORT_DIR:
#   runs.csv         every run's final metrics, one row per (preset, seed)
#   curves.csv       every evaluation (learning curves), one row per eval
#   summary.md       mean ± std per preset, and the relative change of each
#                    CVR metric against the `cvr` baseline
#   cvr_gain.png     relative CVR AUC gain over `cvr` (clicked and, if known,
#                    entire space), mean with ± std error bars
#   curves.png       CTR and CVR AUC against training step per preset (seed 1)
#   runs/            each run's directory (metrics.jsonl, config, model)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
data="" report="" presets="cvr,ctr,shared-bottom,esmm,esmm-cvr,esmm-ns,mmoe,ple,escm2-ipw,escm2-dr"
seeds="1,2,3" servers=2 workers=2 eval_every=0
usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while getopts "d:o:p:r:s:w:e:h" o; do
  case $o in
    d) data=$OPTARG ;; o) report=$OPTARG ;; p) presets=$OPTARG ;; r) seeds=$OPTARG ;;
    s) servers=$OPTARG ;; w) workers=$OPTARG ;; e) eval_every=$OPTARG ;; *) usage ;;
  esac
done
shift $((OPTIND - 1))
[[ ${1:-} == -- ]] && shift
[[ -n $data && -n $report ]] || usage
for f in sample_skeleton_train.csv common_features_train.csv sample_skeleton_test.csv common_features_test.csv; do
  [[ -s $data/$f ]] || { echo "ablation: $data/$f missing" >&2; exit 2; }
done
bin=${FUNNEL_BIN:-$top/build/funnel}
[[ -x $bin ]] || { echo "ablation: $bin not built (run launch/build.sh)" >&2; exit 2; }
command -v gnuplot >/dev/null || bash "$top/launch/install-deps.sh" gnuplot-nox
mkdir -p "$report/runs"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if (( eval_every == 0 )); then
  # about ten points per learning curve
  n=$(wc -l <"$data/sample_skeleton_train.csv")
  eval_every=$(( n / 1024 / 10 ))
  (( eval_every > 0 )) || eval_every=1
fi

# obj LINE KEY [truth]: the JSON object of a task in a metrics line
obj() {
  local line=$1 key=$2 part
  if [[ ${3:-} == truth ]]; then part=${line#*\"truth\":}; [[ $part != "$line" ]] || return 0
  else part=${line%%\"truth\":*}; fi
  grep -o "\"$key\":{[^}]*}" <<<"$part" | head -1 || true
}
val() { { grep -o "\"$2\":[^,}]*" <<<"$1" || true; } | head -1 | cut -d: -f2 | sed 's/null/NA/'; }

tasks=(ctr cvr ctcvr cvr_entire)
metrics=(auc prauc logloss rce calibration)
header="preset,seed,step,train_examples_per_sec"
for t in "${tasks[@]}"; do for m in "${metrics[@]}"; do header+=",${t}_$m"; done; done
header+=",truth_ctr_auc,truth_cvr_auc,truth_cvr_entire_auc"
echo "$header" >"$report/runs.csv"
echo "$header" >"$report/curves.csv"

row() { # row PRESET SEED LINE
  local r="$1,$2,$(val "$3" step),$(val "$3" train_examples_per_sec)" o
  for t in "${tasks[@]}"; do
    o=$(obj "$3" "$t")
    for m in "${metrics[@]}"; do r+=",$( [[ -n $o ]] && val "$o" "$m" || echo NA)"; done
  done
  for t in ctr cvr cvr_entire; do
    o=$(obj "$3" "$t" truth)
    r+=",$( [[ -n $o ]] && val "$o" auc || echo NA)"
  done
  echo "$r"
}

IFS=, read -ra P <<<"$presets"
IFS=, read -ra S <<<"$seeds"
for p in "${P[@]}"; do
  for s in "${S[@]}"; do
    run=$report/runs/$p-seed$s
    if [[ ! -s $run/metrics.jsonl ]] || ! tail -n 1 "$run/metrics.jsonl" | grep -q '"final":true'; then
      rm -rf "$run"
      echo "ablation: $p seed $s ($servers servers + $workers workers)" >&2
      "$top/launch/funnel-local" -s "$servers" -w "$workers" -b "$bin" -- --model "$p" --seed "$s" \
        --train "$data/sample_skeleton_train.csv" --common "$data/common_features_train.csv" \
        --test "$data/sample_skeleton_test.csv" --test-common "$data/common_features_test.csv" \
        --eval-every "$eval_every" --no-preds --log-every 60 --out "$run" "$@" 2>"$run.log" ||
        { tail -20 "$run.log" >&2; echo "ablation: $p seed $s failed (log: $run.log)" >&2; exit 1; }
      # train's one warning about a truth file it found but could not load
      if [[ -z ${truth_said:-} ]] && truth_said=$(grep -m1 "entire-space metrics are off" "$run.log"); then
        echo "ablation: ${truth_said#*warning: }" >&2
      fi
    fi
    while IFS= read -r line; do row "$p" "$s" "$line" >>"$report/curves.csv"; done <"$run/metrics.jsonl"
    row "$p" "$s" "$(tail -n 1 "$run/metrics.jsonl")" >>"$report/runs.csv"
  done
done

# summary: mean ± std per preset; relative change of the CVR metrics vs cvr
awk -F, -v presets="$presets" '
  NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
  { p = $1; n[p]++
    for (c in col) if (col[c] > 2 && $(col[c]) != "NA") { s[p, c] += $(col[c]); q[p, c] += $(col[c]) ^ 2; k[p, c]++ } }
  function mean(p, c) { return k[p, c] ? s[p, c] / k[p, c] : "NA" }
  function sd(p, c,   m) { if (k[p, c] < 2) return 0; m = s[p, c] / k[p, c]; v = (q[p, c] - k[p, c] * m * m) / (k[p, c] - 1); return v > 0 ? sqrt(v) : 0 }
  function ms(p, c, f) { return k[p, c] ? sprintf(f " ± " f, mean(p, c), sd(p, c)) : "—" }
  function rel(p, c,   b) { b = mean("cvr", c); if (!k[p, c] || !k["cvr", c] || b == 0) return "—"; return sprintf("%+.2f%%", 100 * (mean(p, c) - b) / (b < 0 ? -b : b)) }
  function relaimpr(p, c,   b) { b = mean("cvr", c); if (!k[p, c] || !k["cvr", c] || b <= 0.5) return "—"; return sprintf("%+.2f%%", 100 * ((mean(p, c) - 0.5) / (b - 0.5) - 1)) }
  END {
    np = split(presets, P, ",")
    print "## Metrics per preset (mean ± std over seeds)\n"
    print "| preset | runs | CTR AUC | CTCVR AUC | CVR AUC (clicked) | CVR AUC (entire space) | CVR RCE (clicked) | CVR RCE (entire) | CVR calibration (entire) |"
    print "|---|---|---|---|---|---|---|---|---|"
    for (i = 1; i <= np; i++) { p = P[i]; if (!n[p]) continue
      printf "| %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", p, n[p], ms(p, "ctr_auc", "%.4f"), ms(p, "ctcvr_auc", "%.4f"),
        ms(p, "cvr_auc", "%.4f"), ms(p, "cvr_entire_auc", "%.4f"), ms(p, "cvr_rce", "%.2f"), ms(p, "cvr_entire_rce", "%.2f"), ms(p, "cvr_entire_calibration", "%.3f") }
    print "\n## CVR metrics relative to the `cvr` baseline\n"
    print "Relative change of the mean, in percent; RelaImpr = ((AUC - 0.5) / (AUC_cvr - 0.5) - 1), as the ESMM papers report it.\n"
    print "| preset | AUC clicked | RelaImpr clicked | AUC entire | RelaImpr entire | PR-AUC clicked | PR-AUC entire | log loss clicked | log loss entire |"
    print "|---|---|---|---|---|---|---|---|---|"
    for (i = 1; i <= np; i++) { p = P[i]; if (!n[p] || p == "cvr") continue
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", p, rel(p, "cvr_auc"), relaimpr(p, "cvr_auc"), rel(p, "cvr_entire_auc"),
        relaimpr(p, "cvr_entire_auc"), rel(p, "cvr_prauc"), rel(p, "cvr_entire_prauc"), rel(p, "cvr_logloss"), rel(p, "cvr_entire_logloss") }
    if (k[P[1], "truth_cvr_entire_auc"]) printf "\nCeiling (true probabilities): CTR AUC %.4f, CVR AUC clicked %.4f, entire space %.4f.\n",
      mean(P[1], "truth_ctr_auc"), mean(P[1], "truth_cvr_auc"), mean(P[1], "truth_cvr_entire_auc")
  }' "$report/runs.csv" >"$report/summary.md"

# per-preset relative AUC gains with error bars (std over seeds of the gain)
awk -F, -v presets="$presets" '
  NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
  { a[$1, $2] = $(col["cvr_auc"]); e[$1, $2] = $(col["cvr_entire_auc"]); seen[$2] = 1 }
  END {
    np = split(presets, P, ",")
    for (i = 1; i <= np; i++) { p = P[i]; if (p == "cvr") continue
      na = ne = sa = qa = se = qe = 0
      for (sd in seen) {
        if ((p, sd) in a && ("cvr", sd) in a && a["cvr", sd] != "NA" && a[p, sd] != "NA") { g = 100 * (a[p, sd] - a["cvr", sd]) / a["cvr", sd]; sa += g; qa += g * g; na++ }
        if ((p, sd) in e && ("cvr", sd) in e && e["cvr", sd] != "NA" && e[p, sd] != "NA") { g = 100 * (e[p, sd] - e["cvr", sd]) / e["cvr", sd]; se += g; qe += g * g; ne++ }
      }
      if (!na) continue
      ma = sa / na; me = ne ? se / ne : 0
      va = na > 1 ? (qa - na * ma * ma) / (na - 1) : 0; ve = ne > 1 ? (qe - ne * me * me) / (ne - 1) : 0
      printf "%s %.4f %.4f %.4f %.4f\n", p, ma, sqrt(va > 0 ? va : 0), me, sqrt(ve > 0 ? ve : 0)
    }
  }' "$report/runs.csv" >"$report/gain.dat"
if [[ -s $report/gain.dat ]]; then
  gnuplot <<GP
set terminal png size 1000,560
set output "$report/cvr_gain.png"
set title "CVR AUC relative to the cvr baseline (mean ± std over seeds)"
set ylabel "AUC change vs cvr (%)"
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.6 border -1
set xtics rotate by -30
set grid ytics
set key top left
plot "$report/gain.dat" using 2:3:xtic(1) title "clicked impressions", "" using 4:5 title "entire space (counterfactual)"
GP
fi
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next } $2 == 1 { print $1, $3, $(col["ctr_auc"]), $(col["cvr_auc"]), $(col["cvr_entire_auc"]) > (DIR "/curve-" $1 ".dat") }' \
  DIR="$report" "$report/curves.csv"
plots=""
for p in "${P[@]}"; do [[ -s $report/curve-$p.dat ]] && plots+="\"$report/curve-$p.dat\" using 2:(\$4 == 0 ? NaN : \$4) with linespoints title \"$p\", "; done
if [[ -n $plots ]]; then
  gnuplot <<GP
set terminal png size 1000,560
set output "$report/curves.png"
set title "Learning curves (seed 1): CVR AUC on clicked test impressions"
set xlabel "step"
set ylabel "CVR AUC"
set datafile missing "NA"
set grid
set key bottom right
plot ${plots%, }
GP
fi
echo "ablation: report in $report (summary.md, runs.csv, curves.csv, cvr_gain.png, curves.png)" >&2
cat "$report/summary.md"
