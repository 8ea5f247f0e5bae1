#!/usr/bin/env bash
# launch/netns-cluster.sh — a funnel job across several "hosts" on one machine.
#
#   launch/netns-cluster.sh [-n HOSTS] [-r RATE] [-s SERVERS] [-w WORKERS]
#                           [-b FUNNEL_BINARY] [-a] -- TRAIN_FLAGS...
#       brings a cluster up, runs `funnel train` across it, tears it down
#   launch/netns-cluster.sh up -n HOSTS [-r RATE]    only bring it up
#   launch/netns-cluster.sh run [-s S] [-w W] [-b BIN] [-a] -- TRAIN_FLAGS...
#                                                    run on a cluster left up
#   launch/netns-cluster.sh down                     tear down (idempotent)
#   launch/netns-cluster.sh status                   what exists now
#
#   -n HOSTS    number of hosts (default SERVERS + WORKERS, at most 200)
#   -r RATE     rate limit of each host's link, in tc units (200mbit, 1gbit,
#               50mbit ...); default: no limit
#   -s, -w      servers and workers (default 1 and 1)
#   -b          the funnel binary (default $FUNNEL_BIN or build/funnel)
#   -a          let funnel choose its bind address (`--bind auto`: all
#               interfaces, advertised by host name, resolved through
#               /etc/netns/fnhI/hosts) instead of giving each server its
#               host's address (`--bind 10.77.0.X`, the default)
#
# What it creates (root needed: CAP_NET_ADMIN and CAP_SYS_ADMIN):
#   - network namespace fnsw, the "switch": bridge br0 with 10.77.0.1/24,
#     also the head node where mpirun runs (it runs no ranks);
#   - network namespaces fnh0..fnhN-1, the "hosts": loopback, eth0 with
#     10.77.0.(10+I)/24, a veth whose other end (named fnhI) is a port of br0;
#     no default route, IPv6 off: nothing can leave the 10.77.0.0/24 island;
#   - with -r: a tbf qdisc (rate RATE, burst 10 ms of RATE, at least 16 KiB,
#     latency 50 ms) on both ends of every veth, i.e. egress of the host
#     (eth0 in fnhI) and egress toward the host (fnhI in fnsw);
#   - /etc/netns/fnhI/hosts and /etc/netns/fnsw/hosts (`ip netns exec`
#     bind-mounts them over /etc/hosts) naming every host: fnhI, fnsw;
#   - /run/funnel-netns/: hosts (address, name), hostfile (one line per host,
#     by address, slots=1), the cluster's parameters.
#   The root namespace gets no interface, address or route, and its host
#   name is untouched.  Exit code: mpirun's (the job's), 2 for bad usage,
#   130/143 when interrupted.
#
# How it runs: ip netns exec fnsw mpirun --hostfile /run/funnel-netns/hostfile
#   --mca plm_rsh_agent launch/netns-rsh --mca plm_rsh_no_tree_spawn 1
#   --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24
#   --mca pml ob1 --allow-run-as-root --oversubscribe --bind-to none
#   -np 1 --host 10.77.0.10 funnel train --servers S ... --bind 10.77.0.10 :
#   -np 1 --host 10.77.0.11 ...                       (the full command is printed)
# One app context per rank places rank R on host R mod N (with 4 hosts and
# 2 + 2: server 0 on fnh0, server 1 on fnh1, workers on fnh2 and fnh3) and
# gives each server its own host's address.  netns-rsh starts every orted in
# its host's network namespace and in a UTS namespace of its own whose host
# name is fnhI, so MPI_Get_processor_name differs between hosts, as it does
# between real machines.  --bind-to none: every "host" believes it owns all
# the cores, binding would pile the ranks on core 0.  After the job, the byte
# and drop counters of every link are printed.
#
# Inspect while a job runs (or after `up`):
#   ip netns list;  ip -n fnh0 addr;  ip -n fnsw link show master br0
#   tc -n fnh0 -s qdisc show dev eth0      (host -> switch: sent, dropped, overlimits)
#   tc -n fnsw -s qdisc show dev fnh0      (switch -> host)
#   ip -n fnh0 -s link show eth0           (bytes, packets)
#   ip netns pids fnh0 | xargs -r ps -o pid,args -p
#   ip netns exec fnh0 ss -tnp             (the ZeroMQ and MPI connections)
# Tear-down (EXIT, also on errors, Ctrl-C and TERM; `down` does the same and
# may be run any time): the processes in the namespaces are sent TERM, then
# KILL, by pid (`ip netns pids`); the namespaces are deleted (which deletes
# the veths and the bridge); /etc/netns/{fnsw,fnhI} and /run/funnel-netns
# are removed.  An interrupted `run` stops only its own processes (mpirun,
# orted, funnel) and leaves the cluster up.  One cluster at a time (lock
# /run/funnel-netns.lock, waited for up to 5 minutes: two runs queue
# rather than fail); a cluster left by a killed (SIGKILL) run, its
# owner pid gone, is cleaned up by the next run; one brought `up` by hand
# is left alone until `down`.  A --bind among TRAIN_FLAGS is passed as given
# (no per-server --bind is added).
#
# Limits: every host shares this machine's cores, memory and file system
# (the run directory and data need no copying, as on a shared file system);
# the links are virtual: no latency or loss emulation (netem is not
# available here), only rate limits, and the veth/bridge path costs CPU that
# the ranks compete for, so absolute speeds are not a real network's.  The
# addresses are fixed (10.77.0.0/24; the switch is 10.77.0.1, hosts start at
# .10).  IPv4 only.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
AGENT=$top/launch/netns-rsh
STATE=${FUNNEL_NETNS_STATE:-/run/funnel-netns}
export FUNNEL_NETNS_STATE=$STATE
LOCK=/run/funnel-netns.lock
NET=10.77.0 SUBNET=10.77.0.0/24 HEAD=10.77.0.1 SW=fnsw BR=br0
MAX_HOSTS=200

say() { echo "netns-cluster: $*" >&2; }
die() { say "$*"; exit 2; }
usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

our_namespaces() { ip netns list 2>/dev/null | awk '{ print $1 }' | grep -E "^($SW|fnh[0-9]+)\$" || true; }
host_addr() { echo "$NET.$((10 + $1))"; }

# rate_bytes RATE: bytes per second of a tc rate, empty if not understood
rate_bytes() {
  awk -v r="$1" 'BEGIN {
    if (!match(r, /^[0-9]+(\.[0-9]+)?/)) exit
    n = substr(r, 1, RLENGTH); u = tolower(substr(r, RLENGTH + 1))
    m["bit"] = 1 / 8; m[""] = 1 / 8; m["kbit"] = 1e3 / 8; m["mbit"] = 1e6 / 8; m["gbit"] = 1e9 / 8; m["tbit"] = 1e12 / 8
    m["kibit"] = 1024 / 8; m["mibit"] = 1048576 / 8; m["gibit"] = 1073741824 / 8
    m["bps"] = 1; m["kbps"] = 1e3; m["mbps"] = 1e6; m["gbps"] = 1e9
    m["kibps"] = 1024; m["mibps"] = 1048576; m["gibps"] = 1073741824
    if (!(u in m) || n <= 0) exit
    printf "%d\n", n * m[u]
  }'
}

# ---- down -----------------------------------------------------------------

kill_namespace_processes() { # PATTERN NAMESPACE...: TERM, up to 5 s, then KILL (PATTERN: of
  local pat=$1 ns pids=() p t    # the command lines to stop, empty for all)
  shift
  for ns in "$@"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do
      [[ $p != "$$" ]] || continue
      [[ -z $pat || $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) =~ $pat ]] && pids+=("$p")
    done
  done
  ((${#pids[@]})) || return 0
  say "stopping ${#pids[@]} process(es) left in the namespaces: ${pids[*]}"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for t in $(seq 50); do
    local alive=()
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive+=("$p"); done
    ((${#alive[@]})) || return 0
    pids=("${alive[@]}")
    sleep 0.1
  done
  say "killing ${pids[*]}"
  kill -KILL "${pids[@]}" 2>/dev/null || true
}

# `ip netns add` bind-mounts /run/netns on itself; with no namespace left
# that mount is ours to undo (a chroot cannot be removed while it stays).
release_run_netns() {
  if [[ -z $(ip netns list 2>/dev/null) ]] && mountpoint -q /run/netns 2>/dev/null; then
    umount /run/netns 2>/dev/null || true
  fi
}

do_down() {
  local nss ns
  mapfile -t nss < <(our_namespaces)
  if ((${#nss[@]})); then
    kill_namespace_processes "" "${nss[@]}"
    for ns in "${nss[@]}"; do ip netns del "$ns" 2>/dev/null || say "cannot delete namespace $ns"; done
  fi
  local d
  for d in /etc/netns/$SW /etc/netns/fnh*; do
    [[ $d =~ ^/etc/netns/($SW|fnh[0-9]+)$ && -d $d ]] && rm -rf "$d"
  done
  if [[ -e $STATE/made-etc-netns ]]; then rmdir /etc/netns 2>/dev/null || true; fi
  rm -rf "$STATE"
  if [[ -n $(our_namespaces) ]]; then say "namespaces left: $(our_namespaces | tr '\n' ' ')"; return 1; fi
  release_run_netns
  return 0
}

# ---- up -------------------------------------------------------------------

do_up() { # HOSTS RATE OWNER
  local n=$1 rate=$2 owner=$3 i ns addr burst=
  [[ $n =~ ^[1-9][0-9]*$ ]] && ((n <= MAX_HOSTS)) || die "-n must be 1..$MAX_HOSTS"
  if [[ -n $rate ]]; then
    local bps
    bps=$(rate_bytes "$rate")
    [[ -n $bps ]] && ((bps >= 1000)) || die "-r $rate: not a tc rate of at least 8kbit (e.g. 200mbit, 1gbit)"
    burst=$((bps / 100))
    ((burst < 16384)) && burst=16384
  fi
  [[ -z $(our_namespaces) ]] || die "a netns cluster exists already ($(our_namespaces | tr '\n' ' ')): '$0 down' first"
  mkdir -p "$STATE"
  [[ -d /etc/netns ]] || { mkdir -p /etc/netns && touch "$STATE/made-etc-netns"; }
  echo "$owner" >"$STATE/owner"
  echo "$n" >"$STATE/n"
  echo "$rate" >"$STATE/rate"
  : >"$STATE/hosts"
  : >"$STATE/hostfile"
  for ((i = 0; i < n; i++)); do
    echo "$(host_addr $i) fnh$i" >>"$STATE/hosts"
    echo "$(host_addr $i) slots=1" >>"$STATE/hostfile"
  done
  local etc_hosts
  etc_hosts=$(printf '127.0.0.1 localhost\n%s %s\n' "$HEAD" "$SW"; cat "$STATE/hosts")

  ip netns add "$SW"
  ip netns exec "$SW" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$SW" link set lo up
  ip -n "$SW" link add "$BR" type bridge
  ip -n "$SW" addr add "$HEAD/24" dev "$BR"
  ip -n "$SW" link set "$BR" up
  mkdir -p "/etc/netns/$SW"
  echo "$etc_hosts" >"/etc/netns/$SW/hosts"
  for ((i = 0; i < n; i++)); do
    ns=fnh$i addr=$(host_addr $i)
    ip netns add "$ns"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
    ip -n "$SW" link add "$ns" type veth peer name eth0 netns "$ns"
    ip -n "$SW" link set "$ns" master "$BR" up
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
    if [[ -n $rate ]]; then
      tc -n "$ns" qdisc add dev eth0 root tbf rate "$rate" burst "$burst" latency 50ms
      tc -n "$SW" qdisc add dev "$ns" root tbf rate "$rate" burst "$burst" latency 50ms
    fi
    mkdir -p "/etc/netns/$ns"
    echo "$etc_hosts" >"/etc/netns/$ns/hosts"
  done
  # every link has carrier and every bridge port forwards before anything is launched
  local t
  for ((i = 0; i < n; i++)); do
    for t in $(seq 50); do
      ip -n "fnh$i" -o link show eth0 | grep -q LOWER_UP &&
        [[ $(ip netns exec "$SW" cat "/sys/class/net/$BR/brif/fnh$i/state" 2>/dev/null) == 3 ]] && break
      ((t < 50)) || die "the link of fnh$i does not come up"
      sleep 0.1
    done
  done
  say "up: $n host(s) fnh0..fnh$((n - 1)) at $(host_addr 0)..$(host_addr $((n - 1))) on $BR in $SW ($HEAD)${rate:+, links limited to $rate (tbf, burst $burst bytes)}"
}

# ---- run ------------------------------------------------------------------

mpirun_pid=
link_report() {
  local n i ns role
  n=$(cat "$STATE/n" 2>/dev/null) || return 0
  say "link counters since up (eth0 of each host; tbf = the host-side qdisc, sw = the switch-side one):"
  printf '  %-6s %-11s %-9s %14s %14s %12s %12s\n' host address ranks rx_bytes tx_bytes tbf_dropped sw_dropped >&2
  for ((i = 0; i < n; i++)); do
    ns=fnh$i role=${RANKS_ON[$i]:-}
    local rx tx d1 d2
    rx=$(ip netns exec "$ns" cat /sys/class/net/eth0/statistics/rx_bytes 2>/dev/null || echo '?')
    tx=$(ip netns exec "$ns" cat /sys/class/net/eth0/statistics/tx_bytes 2>/dev/null || echo '?')
    d1=$(tc -n "$ns" -s qdisc show dev eth0 2>/dev/null | grep -o 'dropped [0-9]*' | head -1 | cut -d' ' -f2)
    d2=$(tc -n "$SW" -s qdisc show dev "$ns" 2>/dev/null | grep -o 'dropped [0-9]*' | head -1 | cut -d' ' -f2)
    printf '  %-6s %-11s %-9s %14s %14s %12s %12s\n' "$ns" "$(host_addr $i)" "${role:--}" "$rx" "$tx" "${d1:--}" "${d2:--}" >&2
  done
}

check_run() { # SERVERS WORKERS BIN
  [[ $1 =~ ^[1-9][0-9]*$ && $2 =~ ^[1-9][0-9]*$ ]] || die "-s and -w must be positive integers"
  [[ -x $3 ]] || die "$3 not built (run launch/build.sh)"
  command -v mpirun >/dev/null || die "mpirun not found"
}

do_run() { # SERVERS WORKERS BIN AUTO FLAGS...
  local s=$1 w=$2 bin=$3 auto=$4
  shift 4
  check_run "$s" "$w" "$bin"
  [[ -s $STATE/hostfile && -e /run/netns/$SW ]] || die "no netns cluster is up ('$0 up -n HOSTS' first)"
  bin=$(readlink -f "$bin")
  local n np=$((s + w)) r h a user_bind=0
  n=$(cat "$STATE/n")
  RATE_USED=$(cat "$STATE/rate" 2>/dev/null || true)
  for a in "$@"; do [[ $a == --bind || $a == --bind=* ]] && user_bind=1; done
  local threads=${OPENBLAS_NUM_THREADS:-}
  if [[ -z $threads ]]; then
    threads=1
    local per_host=$(((np + n - 1) / n))
    ((per_host < $(nproc))) && threads=$(($(nproc) / per_host))
    ((np > $(nproc))) && threads=1
  fi
  export OPENBLAS_NUM_THREADS=$threads
  local cmd=(mpirun --hostfile "$STATE/hostfile"
    --mca plm_rsh_agent "$AGENT" --mca plm_rsh_no_tree_spawn 1
    --mca btl_tcp_if_include "$SUBNET" --mca oob_tcp_if_include "$SUBNET"
    --mca pml ob1 --allow-run-as-root --oversubscribe --bind-to none)
  # every namespace "host" has one slot, so Open MPI cannot see that the
  # ranks share this machine's cores: tell it to yield instead of spinning
  # (1 server + 4 workers on 2 cores: 8.6k -> 24.8k impressions/s)
  ((np > $(nproc))) && cmd+=(--mca mpi_yield_when_idle 1)
  local xenv=(-x OPENBLAS_NUM_THREADS)
  [[ -n ${OPENBLAS_CORETYPE:-} ]] && xenv+=(-x OPENBLAS_CORETYPE)
  RANKS_ON=()
  for ((r = 0; r < np; r++)); do
    h=$((r % n))
    ((r)) && cmd+=(:)
    cmd+=(-np 1 --host "$(host_addr $h)" "${xenv[@]}" "$bin" train --servers "$s" "$@")
    if ((r < s)); then
      ((auto || user_bind)) || cmd+=(--bind "$(host_addr $h)")
      RANKS_ON[h]+="${RANKS_ON[h]:+,}s$r"
    else
      RANKS_ON[h]+="${RANKS_ON[h]:+,}w$((r - s))"
    fi
  done
  say "running $s server(s) + $w worker(s) on $n host(s):"
  echo "  ip netns exec $SW ${cmd[*]}" >&2
  local t0 t1 rc=0
  t0=$(date +%s.%N)
  ip netns exec "$SW" "${cmd[@]}" 9>&- &
  mpirun_pid=$!
  wait "$mpirun_pid" || rc=$?
  mpirun_pid=
  t1=$(date +%s.%N)
  say "job ended with exit code $rc after $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
  link_report
  if ((rc != 0)) && [[ " $* " == *" --checkpoint-every "* ]]; then
    local resume=()
    for a in "$@"; do [[ $a == --resume ]] || resume+=("$a"); done
    say "the job ended with exit code $rc (the lost process is named above); to continue from its last" \
      "checkpoint run: $0 -n $n${RATE_USED:+ -r $RATE_USED} -s $s -w $w -b $bin $( ((auto)) && echo '-a ')-- ${resume[*]} --resume"
  fi
  return $rc
}

stop_job() { # on interruption: mpirun first (it stops its orteds), then whatever is left
  if [[ -n $mpirun_pid ]]; then
    kill -TERM "$mpirun_pid" 2>/dev/null || true
    local t
    for t in $(seq 50); do kill -0 "$mpirun_pid" 2>/dev/null || break; sleep 0.1; done
    mpirun_pid=
  fi
}

do_status() {
  local nss
  nss=$(our_namespaces | tr '\n' ' ')
  if [[ -z $nss ]]; then echo "no netns cluster"; return 0; fi
  echo "namespaces: $nss"
  [[ -s $STATE/owner ]] && echo "owner: $(cat "$STATE/owner")   rate: $(cat "$STATE/rate" 2>/dev/null)"
  [[ -s $STATE/hostfile ]] && { echo "hostfile $STATE/hostfile:"; sed 's/^/  /' "$STATE/hostfile"; }
  local ns
  for ns in $(our_namespaces); do
    echo "$ns: $(ip netns pids "$ns" | wc -l) process(es)"
  done
}

lock() {
  exec 9>"$LOCK"
  flock -n 9 && return 0
  say "waiting (up to 5 minutes) for another netns-cluster.sh to finish (one cluster at a time, lock $LOCK)"
  flock -w 300 9 || die "another netns-cluster.sh still holds $LOCK"
}

need_root() {
  [[ $(id -u) == 0 ]] || die "must run as root (network namespaces need CAP_NET_ADMIN)"
  command -v ip >/dev/null && command -v tc >/dev/null || die "ip and tc are needed (apt-get install iproute2)"
}

# ---- command line -----------------------------------------------------------

sub=all
case ${1:-} in up | run | down | status) sub=$1; shift ;; -h | --help) usage ;; esac
hosts='' rate='' servers=1 workers=1 bin=${FUNNEL_BIN:-$top/build/funnel} auto=0
while getopts "n:r:s:w:b:ah" o; do
  case $o in
    n) hosts=$OPTARG ;;
    r) rate=$OPTARG ;;
    s) servers=$OPTARG ;;
    w) workers=$OPTARG ;;
    b) bin=$OPTARG ;;
    a) auto=1 ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[[ ${1:-} == -- ]] && shift
need_root

case $sub in
  status) do_status ;;
  down) lock; do_down ;;
  up)
    lock
    [[ -n $hosts ]] || die "up needs -n HOSTS"
    trap 'rc=$?; trap - EXIT; ((rc)) && { say "up failed, tearing down"; do_down || true; }; exit $rc' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    do_up "$hosts" "$rate" manual
    echo "hostfile: $STATE/hostfile   agent: $AGENT   ('$0 run -s S -w W -- FLAGS', then '$0 down')"
    ;;
  run)
    lock
    # the cluster stays up; only what this job started (mpirun, orted, funnel) is stopped
    trap 'rc=$?; trap - EXIT; stop_job; ((rc == 0)) || kill_namespace_processes "^(mpirun|orted|$(readlink -f "$bin")) " $(our_namespaces) || true; exit $rc' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    do_run "$servers" "$workers" "$bin" "$auto" "$@"
    ;;
  all)
    lock
    check_run "$servers" "$workers" "$bin"
    [[ -n $hosts ]] || hosts=$((servers + workers))
    if [[ -n $(our_namespaces) ]]; then
      owner=$(cat "$STATE/owner" 2>/dev/null || true)
      if [[ $owner =~ ^pid\ ([0-9]+)$ ]] && ! kill -0 "${BASH_REMATCH[1]}" 2>/dev/null; then
        say "cleaning up a cluster left by a run that is gone (pid ${BASH_REMATCH[1]})"
        do_down
      else
        die "a netns cluster is up (owner: ${owner:-unknown}); use '$0 run', or '$0 down' first"
      fi
    fi
    trap 'rc=$?; trap - EXIT; stop_job; say "tearing down"; do_down || rc=1; exit $rc' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    do_up "$hosts" "$rate" "pid $$"
    do_run "$servers" "$workers" "$bin" "$auto" "$@"
    ;;
esac
