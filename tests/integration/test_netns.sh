# 2 servers + 2 workers on four "hosts" (network namespaces joined by a
# bridge, launch/netns-cluster.sh), over links limited to 200mbit: the job
# succeeds, the servers serve on their own hosts' 10.77.0.x addresses (not
# loopback), every rank runs on its own host, the links carried the traffic,
# metrics are written, and everything is torn down afterwards.  A second,
# unlimited run leaves the address to funnel (--bind auto): the hosts have
# names of their own, so the servers advertise fnh0 and fnh1.
# Skipped (exit 0) only when network namespaces cannot be created.
source "$(dirname "$0")/lib.sh"
CLUSTER="$HERE/../../launch/netns-cluster.sh"

# can network namespaces, and links in them, be made here?
command -v ip >/dev/null || fail "ip not found (apt-get install iproute2)"
probe=fnprobe$$
if ! { ip netns add "$probe" && ip -n "$probe" link set lo up &&
  ip -n "$probe" link add fnprobe0 type veth peer name fnprobe1; } 2>"$WORK/probe.log"; then
  ip netns del "$probe" 2>/dev/null || true
  { [[ -z $(ip netns list 2>/dev/null) ]] && mountpoint -q /run/netns 2>/dev/null && umount /run/netns 2>/dev/null; } || true
  echo "test_netns: skipped: cannot create network namespaces ($(head -1 "$WORK/probe.log"); CAP_SYS_ADMIN and CAP_NET_ADMIN needed)"
  exit 0
fi
ip netns del "$probe"
command -v tc >/dev/null || fail "tc not found (apt-get install iproute2)"
ours() { ip netns list | awk '{ print $1 }' | grep -E '^(fnsw|fnh[0-9]+)$' || true; }

data=$WORK/data
gen "$data" 60000 10000 21

# netjob LOG RUN [netns-cluster flags...] -- [train flags...]
netjob() {
  local log=$1 run=$2
  shift 2
  local opts=()
  while [[ $1 != -- ]]; do opts+=("$1"); shift; done
  shift
  local t0=$SECONDS rc=0
  timeout 600 "$CLUSTER" "${opts[@]}" -s 2 -w 2 -b "$FUNNEL" -- \
    --train "$data/sample_skeleton_train.csv" --common "$data/common_features_train.csv" \
    --test "$data/sample_skeleton_test.csv" --test-common "$data/common_features_test.csv" \
    --out "$run" --log-every 30 --model esmm "$@" >"$log" 2>&1 || rc=$?
  note "$(grep -o 'job ended with exit code.*' "$log" || echo "no job summary") (whole script $((SECONDS - t0)) s)"
  ((rc == 0)) || { tail -n 40 "$log"; fail "netns-cluster.sh ${opts[*]} exited with $rc"; }
}

# torn_down WHAT: no namespace, state, hosts file or process of ours is left
torn_down() {
  [[ -z $(ours) ]] || fail "$1: namespaces left: $(ours | tr '\n' ' ')"
  [[ ! -e /run/funnel-netns ]] || fail "$1: /run/funnel-netns left"
  ! compgen -G "/etc/netns/fnh*" >/dev/null || fail "$1: /etc/netns/fnh* left"
  [[ ! -e /etc/netns/fnsw ]] || fail "$1: /etc/netns/fnsw left"
  ! pgrep -f "orted.*netns-rsh|--out $WORK/" >/dev/null || fail "$1: processes left: $(pgrep -af "orted.*netns-rsh|--out $WORK/")"
  note "$1: torn down"
}

# row LOG HOST: the link counter line of HOST: host address ranks rx tx tbf_dropped sw_dropped
row() { awk -v h="$2" '$1 == h && $2 ~ /^10\.77\.0\./' "$1"; }

# --- rate-limited, servers bound to their hosts' addresses ------------------
netjob "$WORK/limited.log" "$WORK/limited" -n 4 -r 200mbit --
torn_down "200mbit run"
grep -q "links limited to 200mbit" "$WORK/limited.log" || fail "no rate limit reported"
grep -q -- "--mca plm_rsh_agent .*netns-rsh" "$WORK/limited.log" || fail "mpirun did not use the netns agent"
cj=$WORK/limited/cluster.json
[[ -s $cj ]] || fail "no cluster.json"
grep -q '"rank":0,"host":"fnh0","endpoint":"tcp://10\.77\.0\.10:[0-9]*"' "$cj" || { cat "$cj"; fail "server 0 is not on fnh0 at 10.77.0.10"; }
grep -q '"rank":1,"host":"fnh1","endpoint":"tcp://10\.77\.0\.11:[0-9]*"' "$cj" || { cat "$cj"; fail "server 1 is not on fnh1 at 10.77.0.11"; }
! grep -q '127\.0\.0\.1' "$cj" || fail "a server endpoint is on loopback"
note "cluster.json: $(grep -o 'tcp://[^"]*' "$cj" | tr '\n' ' ')"
for h in 0 1 2 3; do
  r=$(row "$WORK/limited.log" "fnh$h")
  [[ -n $r ]] || fail "no link counters for fnh$h"
  read -r _ _ ranks rx tx d1 d2 <<<"$r"
  want=$([[ $h -lt 2 ]] && echo "s$h" || echo "w$((h - 2))")
  [[ $ranks == "$want" ]] || fail "fnh$h runs '$ranks', expected $want"
  [[ $d1 =~ ^[0-9]+$ && $d2 =~ ^[0-9]+$ ]] || fail "fnh$h: no tbf qdisc on both ends of its link ($r)"
  at_least "$rx" 1000000 "fnh$h ($ranks) bytes received"
  at_least "$tx" 1000000 "fnh$h ($ranks) bytes sent"
done
[[ -s $WORK/limited/metrics.jsonl ]] || fail "no metrics.jsonl"
[[ $(field "$WORK/limited" train_examples) == $(lines "$data/sample_skeleton_train.csv") ]] || fail "train_examples != lines of the training file"
[[ $(field "$WORK/limited" test_examples) == $(lines "$data/sample_skeleton_test.csv") ]] || fail "test_examples != lines of the test file"
for t in ctr cvr ctcvr; do
  v=$(metric "$WORK/limited" $t auc)
  awk -v v="$v" 'BEGIN { exit !(v ~ /^[0-9.]+$/ && v > 0 && v < 1) }' || fail "$t auc = '$v'"
  note "$t auc $v"
done
[[ -s $WORK/limited/model/emb-0.bin && -s $WORK/limited/model/emb-1.bin ]] || fail "both shards must be exported"

# --- unlimited, --bind auto: the hosts' own names --------------------------
netjob "$WORK/auto.log" "$WORK/auto" -n 4 -a --
torn_down "auto run"
cj=$WORK/auto/cluster.json
grep -q '"rank":0,"host":"fnh0","endpoint":"tcp://fnh0:[0-9]*"' "$cj" || { cat "$cj"; fail "--bind auto: server 0 does not advertise fnh0"; }
grep -q '"rank":1,"host":"fnh1","endpoint":"tcp://fnh1:[0-9]*"' "$cj" || { cat "$cj"; fail "--bind auto: server 1 does not advertise fnh1"; }
[[ $(field "$WORK/auto" train_examples) == $(lines "$data/sample_skeleton_train.csv") ]] || fail "auto: train_examples != lines of the training file"
# synchronous rounds: the same run whatever the links
close_to "$(metric "$WORK/auto" ctr auc)" "$(metric "$WORK/limited" ctr auc)" 0.0001 "ctr auc unlimited vs 200mbit"

# --- down is idempotent ------------------------------------------------------
"$CLUSTER" down || fail "down on nothing failed"
torn_down "down"
echo "test_netns: ok"
