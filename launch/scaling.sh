#!/usr/bin/env bash
# launch/scaling.sh — throughput of servers x workers x link rates, in one command.
#
#   launch/scaling.sh -o OUT_DIR [-s SERVERS] [-w WORKERS] [-r RATES] [-d DATA_DIR]
#                     [-n TRAIN] [-t TEST] [-m MODEL] [-T BLAS_THREADS] [-Y] [-b FUNNEL]
#                     [-- TRAIN_FLAGS...]
#
#   -s, -w   server and worker counts, comma-separated (default 1,2,4 each)
#   -r       link rates, comma-separated tc rates or "none" for no limit
#            (default none,1gbit,100mbit)
#   -d       an Ali-CCP world to train on (sample_skeleton_{train,test}.csv,
#            common_features_{train,test}.csv); default: OUT_DIR/world, made
#            by `funnel datagen --train TRAIN --test TEST --seed 1` if missing
#   -n, -t   size of that world (default 300000 and 15000 impressions)
#   -m       preset (default esmm); -T OpenBLAS threads per rank (default 1)
#   -Y       let MPI busy-poll while it waits (Open MPI's default on a node it
#            believes it does not oversubscribe); without -Y the jobs run with
#            OMPI_MCA_mpi_yield_when_idle=1, see below
#   -b       the funnel binary (default $FUNNEL_BIN or build/funnel)
#   after --  more `funnel train` flags (e.g. --push-encoding f16)
#
# Every configuration is one job through launch/netns-cluster.sh: one "host"
# (network namespace) per rank, S+W hosts, servers on fnh0..fnhS-1 and
# workers on the next W, every host's link limited to RATE in each direction
# (tbf on both ends of its veth), 1 epoch over the training file with the
# default global batch (1024 examples per step, B/W per worker), evaluation
# once at the end.  Writes into OUT_DIR:
#   scaling.csv     one row per (servers, workers, rate), columns below
#   throughput.png  impressions/s against workers, one line per (servers, rate)
#   efficiency.png  per-worker efficiency against workers, the same lines
#   summary.md      the grid, its duration and the table
#   runs/S-W-RATE/  each job's run directory, cpu-rank-R.txt and job.log
# A configuration whose run directory holds a final metrics line and CPU
# times is not run again (delete it to redo it); a failed one is reported
# with status "failed" and NA values, and the script then exits 1.
# Ctrl-C, TERM or an error stop the running job: its netns-cluster.sh is
# sent TERM and tears its namespaces down (and if it was killed before it
# could, the cluster it owned is taken down here); nothing is left behind.
#
# Columns: impressions_per_sec (the job's train_examples_per_sec: training
# only, evaluation excluded); per_worker_efficiency = impressions_per_sec /
# (workers x impressions_per_sec of the smallest worker count at the same
# servers and rate, normally 1); wire_bytes_per_impression = sum over servers
# of bytes_in + bytes_out (ZeroMQ message bodies: keys, values, headers) /
# impressions trained, split into up (worker -> server: pull requests and
# pushes) and down (pull replies); these include the final evaluation's
# pulls (test impressions are 5% of training by default, adding 1-3%); link_bytes_per_impression = bytes sent on all hosts' links
# (TCP/IP, ZeroMQ and MPI — the workers' dense allreduce — start-up and
# evaluation) / impressions; busiest_{worker,server}_link_mb = the largest
# one-direction byte count of a worker's / server's link, in MB;
# server_cpu_seconds / worker_cpu_seconds = user + system CPU time summed
# over the server / worker processes, whole process lifetime (start-up, data
# loading, training, evaluation, export).  CPU time is measured without
# touching funnel: the binary handed to netns-cluster.sh is a wrapper
# (OUT_DIR/funnel-timed) that runs funnel as its child and, when it exits,
# writes bash's `times` for its children (the kernel's rusage of the
# finished process, all threads) to RUN_DIR/cpu-rank-R.txt (R from
# OMPI_COMM_WORLD_RANK; RUN_DIR from the --out flag).  load1 is the load
# average when the job started (other jobs on the machine skew the figures).
#
# Why yield by default: every netns "host" has slots=1, so Open MPI believes
# no node is oversubscribed and its ranks spin at full speed while they wait
# in the workers' allreduce; with more ranks than cores the spinning ranks
# take the CPU from the ones that have work (measured on 2 cores, 1 server
# + 4 workers, no rate limit: 8.6k impressions/s spinning, 24.8k yielding).
# On a real cluster, where each host has its own cores, spinning costs
# nothing; yielding makes this one-machine emulation closer to that.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out="" data="" servers_list="1,2,4" workers_list="1,2,4" rates="none,1gbit,100mbit"
ntrain=300000 ntest=15000 model=esmm threads=1 yield=1 bin=${FUNNEL_BIN:-$top/build/funnel}
usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while getopts "o:s:w:r:d:n:t:m:T:Yb:h" o; do
  case $o in
    o) out=$OPTARG ;; s) servers_list=$OPTARG ;; w) workers_list=$OPTARG ;; r) rates=$OPTARG ;;
    d) data=$OPTARG ;; n) ntrain=$OPTARG ;; t) ntest=$OPTARG ;; m) model=$OPTARG ;;
    T) threads=$OPTARG ;; Y) yield=0 ;; b) bin=$OPTARG ;; *) usage ;;
  esac
done
shift $((OPTIND - 1))
[[ ${1:-} == -- ]] && shift
[[ -n $out ]] || usage
say() { echo "scaling: $*" >&2; }
die() { say "$*"; exit 2; }
IFS=', ' read -ra SS <<<"$servers_list"
IFS=', ' read -ra WW <<<"$workers_list"
IFS=', ' read -ra RR <<<"$rates"
for v in "${SS[@]}" "${WW[@]}"; do [[ $v =~ ^[1-9][0-9]*$ ]] || die "server and worker counts must be positive integers ('$v')"; done
for v in "${SS[@]}"; do for w in "${WW[@]}"; do ((v + w <= 200)) || die "$v + $w ranks: at most 200 hosts"; done; done
for v in "${RR[@]}"; do [[ $v == none || $v =~ ^[0-9.]+[a-zA-Z]+$ ]] || die "rate '$v': a tc rate (100mbit, 1gbit) or none"; done
[[ $ntrain =~ ^[1-9][0-9]*$ && $ntest =~ ^[1-9][0-9]*$ ]] || die "-n and -t must be positive integers"
[[ $threads =~ ^[1-9][0-9]*$ ]] || die "-T must be a positive integer"
[[ $(id -u) == 0 ]] || die "must run as root (network namespaces)"
bin=$(readlink -f "$bin")
[[ -x $bin ]] || die "$bin not built (run launch/build.sh)"
command -v gnuplot >/dev/null || bash "$top/launch/install-deps.sh" gnuplot-nox
mkdir -p "$out/runs"
out=$(cd "$out" && pwd)
cluster=$top/launch/netns-cluster.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=$threads
if ((yield)); then export OMPI_MCA_mpi_yield_when_idle=1; else unset OMPI_MCA_mpi_yield_when_idle; fi

# ---- the world ----------------------------------------------------------------
if [[ -z $data ]]; then
  data=$out/world
  if [[ ! -s $data/sample_skeleton_test.csv ]]; then
    say "generating a world of $ntrain + $ntest impressions in $data"
    "$bin" datagen --out "$data" --train "$ntrain" --test "$ntest" --seed 1 2>"$out/datagen.log" ||
      { cat "$out/datagen.log" >&2; die "datagen failed"; }
  fi
fi
data=$(cd "$data" && pwd)
for f in sample_skeleton_train.csv common_features_train.csv sample_skeleton_test.csv common_features_test.csv; do
  [[ -s $data/$f ]] || die "$data/$f missing"
done

# ---- the CPU-time wrapper handed to netns-cluster.sh as the funnel binary -------
cat >"$out/funnel-timed" <<EOF
#!/bin/bash
# made by launch/scaling.sh: runs funnel, then writes its CPU time (rusage of
# the finished child: user and system seconds, all threads) to
# RUN_DIR/cpu-rank-R.txt as "rank exit_code user_s sys_s"
"$bin" "\$@"
rc=\$?
dir=
while [ \$# -gt 0 ]; do case \$1 in --out) dir=\$2; shift ;; --out=*) dir=\${1#--out=} ;; esac; shift; done
if [ -n "\$dir" ]; then
  r=\${OMPI_COMM_WORLD_RANK:-x}
  mkdir -p "\$dir"
  times >"\$dir/.times-\$r"
  awk -v r="\$r" -v rc="\$rc" 'function s(x,  m) { m = x; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", x); sub(/s\$/, "", x); return m * 60 + x }
    NR == 2 { printf "%s %s %.3f %.3f\n", r, rc, s(\$1), s(\$2) }' "\$dir/.times-\$r" >"\$dir/cpu-rank-\$r.txt"
  rm -f "\$dir/.times-\$r"
fi
exit \$rc
EOF
chmod +x "$out/funnel-timed"

# ---- one job at a time; on exit/Ctrl-C/TERM stop it (it tears its cluster down) --
child=
stop_child() {
  if [[ -n $child ]]; then
    if kill -0 "$child" 2>/dev/null; then
      say "stopping the running job (netns-cluster.sh pid $child; it tears its namespaces down)"
      kill -TERM "$child" 2>/dev/null || true
      wait "$child" 2>/dev/null || true
    fi
    # a cluster still owned by our child (it was killed before its own tear-down): ours to remove
    if [[ $(cat /run/funnel-netns/owner 2>/dev/null) == "pid $child" ]]; then "$cluster" down || true; fi
    child=
  fi
}
trap 'stop_child' EXIT
trap 'stop_child; exit 130' INT
trap 'stop_child; exit 143' TERM

# metrics helpers (the final line of a metrics.jsonl)
num() { { grep -o "\"$2\":[^,}]*" <<<"$1" || true; } | head -1 | cut -d: -f2 | sed 's/null/NA/'; }
task_auc() { local l=${1%%\"truth\":*} o; o=$({ grep -o "\"$2\":{[^}]*}" <<<"$l" || true; } | head -1); [[ -n $o ]] && num "$o" auc || echo NA; }
settings="model=$model threads=$threads yield=$yield bin=$bin data=$data flags=$*"
done_ok() { # RUN_DIR RANKS: finished, with CPU times, under the same settings
  local i
  [[ $(cat "$1/settings" 2>/dev/null) == "$settings" ]] || return 1
  [[ -s $1/metrics.jsonl ]] && tail -n 1 "$1/metrics.jsonl" | grep -q '"final":true' || return 1
  for ((i = 0; i < $2; i++)); do [[ -s $1/cpu-rank-$i.txt ]] || return 1; done
}

header="servers,workers,rate,hosts,train_examples,train_seconds,impressions_per_sec,per_worker_efficiency"
header+=",wire_bytes_per_impression,wire_up_bytes_per_impression,wire_down_bytes_per_impression,link_bytes_per_impression"
header+=",busiest_worker_link_mb,busiest_server_link_mb,server_cpu_seconds,worker_cpu_seconds,job_seconds,load1"
header+=",ctr_auc,cvr_auc,ctcvr_auc,cvr_entire_auc,status"
rows=$out/.rows.csv
: >"$rows"
failed=0
t_grid=$SECONDS ran=0
ncfg=$((${#SS[@]} * ${#WW[@]} * ${#RR[@]})) k=0
say "grid: servers {${SS[*]}} x workers {${WW[*]}} x rates {${RR[*]}} = $ncfg jobs on $data ($(($(wc -l <"$data/sample_skeleton_train.csv"))) training impressions)"
for rate in "${RR[@]}"; do
  for s in "${SS[@]}"; do
    for w in "${WW[@]}"; do
      k=$((k + 1))
      run=$out/runs/$s-$w-$rate np=$((s + w))
      if done_ok "$run" "$np"; then
        say "[$k/$ncfg] $s server(s) + $w worker(s), rate $rate: kept from an earlier run"
      else
        rm -rf "$run"
        mkdir -p "$run"
        uptime | sed 's/.*load average: *//; s/,.*//' >"$run/load1"
        echo "$settings" >"$run/settings"
        ropt=()
        [[ $rate == none ]] || ropt=(-r "$rate")
        say "[$k/$ncfg] $s server(s) + $w worker(s) on $np hosts, rate $rate"
        t0=$SECONDS rc=0 ran=$((ran + 1))
        for _ in 1 2 3; do
          rc=0
          "$cluster" -n "$np" "${ropt[@]}" -s "$s" -w "$w" -b "$out/funnel-timed" -- \
            --model "$model" --train "$data/sample_skeleton_train.csv" --common "$data/common_features_train.csv" \
            --test "$data/sample_skeleton_test.csv" --test-common "$data/common_features_test.csv" \
            --out "$run" --no-preds --log-every 60 "$@" >"$run/job.log" 2>&1 &
          child=$!
          wait "$child" || rc=$?
          stop_child
          # another engineer's cluster was up: wait for it rather than fail
          if ((rc == 2)) && grep -q "a netns cluster is up\|still holds" "$run/job.log"; then
            say "another netns cluster is up; retrying in 60 s"
            sleep 60
            continue
          fi
          break
        done
        echo $((SECONDS - t0)) >"$run/wall_seconds"
        if ((rc != 0)) || ! done_ok "$run" "$np"; then
          say "$s + $w at $rate failed (exit $rc; log $run/job.log):"
          grep -v '^  ip netns exec' "$run/job.log" | tail -15 >&2 || true
        fi
      fi
      st=ok
      done_ok "$run" "$np" || { st=failed; failed=$((failed + 1)); }
      if [[ $st == ok ]]; then
        l=$(tail -n 1 "$run/metrics.jsonl")
        ex=$(num "$l" train_examples) ts=$(num "$l" train_seconds) ips=$(num "$l" train_examples_per_sec)
        sv=${l#*\"servers\":}
        up=$(grep -o '"bytes_in":[0-9]*' <<<"$sv" | cut -d: -f2 | awk '{ t += $1 } END { printf "%.0f", t }')
        down=$(grep -o '"bytes_out":[0-9]*' <<<"$sv" | cut -d: -f2 | awk '{ t += $1 } END { printf "%.0f", t }')
        # link counters printed by netns-cluster.sh: host address ranks rx tx drops drops
        links=$(awk '$1 ~ /^fnh[0-9]+$/ && $2 ~ /^10\.77\.0\./ && $4 ~ /^[0-9]+$/' "$run/job.log")
        cpu=$(cat "$run"/cpu-rank-*.txt)
        r=$(awk -v s="$s" -v ex="$ex" -v ts="$ts" -v ips="$ips" -v up="$up" -v down="$down" -v links="$links" -v cpu="$cpu" 'BEGIN {
              imp = ips * ts; if (imp <= 0) imp = ex
              n = split(links, L, "\n"); tx = 0; bw = bs = 0
              for (i = 1; i <= n; i++) { split(L[i], f, " "); tx += f[5]; m = f[4] > f[5] ? f[4] : f[5]
                if (f[3] ~ /^w/) { if (m > bw) bw = m } else if (m > bs) bs = m }
              n = split(cpu, C, "\n"); cs = cw = 0
              for (i = 1; i <= n; i++) { split(C[i], f, " "); if (f[1] + 0 < s) cs += f[3] + f[4]; else cw += f[3] + f[4] }
              printf "%.0f,%.3f,%.1f,EFF,%.1f,%.1f,%.1f,%.1f,%.2f,%.2f,%.2f,%.2f", imp, ts, ips, (up + down) / imp, up / imp, down / imp, tx / imp, bw / 1e6, bs / 1e6, cs, cw }')
        js=$(grep -o 'job ended with exit code [0-9]* after [0-9.]* s' "$run/job.log" | awk '{ print $(NF - 1) }')
        r+=",${js:-NA},$(cat "$run/load1" 2>/dev/null || echo NA)"
        r+=",$(task_auc "$l" ctr),$(task_auc "$l" cvr),$(task_auc "$l" ctcvr),$(task_auc "$l" cvr_entire)"
      else
        r="NA,NA,NA,EFF,NA,NA,NA,NA,NA,NA,NA,NA,NA,NA,NA,NA,NA,NA"
      fi
      echo "$s,$w,$rate,$np,$r,$st" >>"$rows"
    done
  done
done
elapsed=$((SECONDS - t_grid))

# per-worker efficiency against the smallest worker count of the same servers and rate
minw=$(printf '%s\n' "${WW[@]}" | sort -n | head -1)
{
  echo "$header"
  awk -F, -v OFS=, -v minw="$minw" '
    { line[NR] = $0; if ($2 == minw && $7 != "NA") base[$1, $3] = $7 }
    END { for (i = 1; i <= NR; i++) { $0 = line[i]
            $8 = ($7 != "NA" && ($1, $3) in base && base[$1, $3] > 0) ? sprintf("%.3f", $7 / ($2 / minw * base[$1, $3])) : "NA"
            print } }' "$rows"
} >"$out/scaling.csv"
rm -f "$rows"

# ---- plots: one line per (servers, rate) ------------------------------------------
mkdir -p "$out/plot"
rm -f "$out"/plot/*.dat
plots_t="" plots_e="" ri=0
for rate in "${RR[@]}"; do
  ri=$((ri + 1)) si=0
  for s in "${SS[@]}"; do
    si=$((si + 1))
    f=$out/plot/s$s-$rate.dat
    awk -F, -v s="$s" -v r="$rate" 'NR > 1 && $1 == s && $3 == r && $7 != "NA" { print $2, $7, $8 }' "$out/scaling.csv" | sort -n >"$f"
    [[ -s $f ]] || continue
    plural=s
    ((s > 1)) || plural=
    style="with linespoints lc $ri dt $si pt $((si + 4)) lw 2 title \"$s server$plural, ${rate/#none/unlimited}\""
    plots_t+="\"$f\" using 1:2 $style, "
    plots_e+="\"$f\" using 1:3 $style, "
  done
done
xt=$(printf '%s\n' "${WW[@]}" | sort -n | paste -sd, -)
if [[ -n $plots_t ]]; then
  term="png size 1000,600"
  gnuplot -e 'set terminal pngcairo' 2>/dev/null && term="pngcairo size 1000,600 dashed"
  gnuplot <<GP
set terminal $term
set grid
set key outside right
set logscale x 2
set xtics ($xt)
set xlabel "workers"
set output "$out/throughput.png"
set title "Training throughput ($model, $(wc -l <"$data/sample_skeleton_train.csv") impressions, one network namespace per rank)"
set ylabel "impressions / s"
set yrange [0:*]
plot ${plots_t%, }
set output "$out/efficiency.png"
set title "Per-worker efficiency: throughput / (workers x 1-worker throughput at the same servers and rate)"
set ylabel "per-worker efficiency"
set yrange [0:1.2]
plot ${plots_e%, }, 1 with lines lc rgb "gray" dt 3 notitle
GP
fi

# ---- summary ---------------------------------------------------------------------
{
  echo "# Scaling grid"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(free -g | awk '/^Mem/ { print $2 }') GiB; \`launch/scaling.sh -s ${servers_list// /,} -w ${workers_list// /,} -r ${rates// /,} -n $ntrain -t $ntest -m $model -T $threads$( ((yield)) || echo ' -Y')${*:+ -- $*}\`;"
  echo "data: $data ($(wc -l <"$data/sample_skeleton_train.csv") training, $(wc -l <"$data/sample_skeleton_test.csv") test impressions);"
  echo "one network namespace (\"host\") per rank through launch/netns-cluster.sh; $ncfg configurations, $ran of them run by this invocation in $((elapsed / 60)) min $((elapsed % 60)) s; OpenBLAS threads per rank: $threads; MPI $( ((yield)) && echo "yields when idle (mpi_yield_when_idle=1)" || echo "busy-polls when idle (-Y)")."
  echo
  echo "| servers | workers | rate | imp/s | per-worker eff. | wire B/imp (up+down) | link B/imp | server CPU s | worker CPU s | CTR AUC | CVR AUC | CTCVR AUC | load1 |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
    { printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $c["servers"], $c["workers"], $c["rate"],
        $c["impressions_per_sec"] == "NA" ? "failed" : sprintf("%.0f", $c["impressions_per_sec"]), $c["per_worker_efficiency"],
        $c["wire_bytes_per_impression"] == "NA" ? "NA" : sprintf("%.0f", $c["wire_bytes_per_impression"]),
        $c["link_bytes_per_impression"] == "NA" ? "NA" : sprintf("%.0f", $c["link_bytes_per_impression"]),
        $c["server_cpu_seconds"], $c["worker_cpu_seconds"], f4($c["ctr_auc"]), f4($c["cvr_auc"]), f4($c["ctcvr_auc"]), $c["load1"] }
    function f4(x) { return x == "NA" ? "NA" : sprintf("%.4f", x) }' "$out/scaling.csv"
  echo
  echo "![throughput](throughput.png)"
  echo
  echo "![per-worker efficiency](efficiency.png)"
} >"$out/summary.md"
say "$ran of $ncfg jobs run in $((elapsed / 60)) min $((elapsed % 60)) s; report in $out (scaling.csv, throughput.png, efficiency.png, summary.md)"
cat "$out/scaling.csv"
((failed == 0)) || { say "$failed configuration(s) failed"; exit 1; }
