# A server, and in another run a worker, of a 2 + 2 job is killed (SIGKILL)
# mid-epoch: the job ends within 30 s naming the lost rank and how to
# resume; --resume completes it, and the final model equals an
# uninterrupted run's (training is deterministic).  Then checkpoints are
# truncated and corrupted: resume reports them by name and uses the one
# before.
source "$(dirname "$0")/lib.sh"
data=$WORK/data
gen "$data" 250000 30000 16
flags=(--model esmm --checkpoint-every 30 --no-preds)
job 2 2 "$data" "$WORK/clean" "${flags[@]}" 2>"$WORK/clean.log" || { cat "$WORK/clean.log"; fail "clean run"; }
steps=$(field "$WORK/clean" step)

kill_and_resume() { # kill_and_resume NAME RANK
  local name=$1 rank=$2 run=$WORK/$1
  job 2 2 "$data" "$run" "${flags[@]}" 2>"$run.log" &
  local pid=$!
  for _ in $(seq 1 600); do [[ -e $run/ckpt/step-0000000060/MANIFEST ]] && break; sleep 0.1; done
  [[ -e $run/ckpt/step-0000000060/MANIFEST ]] || { kill "$pid"; cat "$run.log"; fail "$name: no checkpoint appeared"; }
  # the rank's process: mpirun's children in rank order carry OMPI_COMM_WORLD_RANK
  local victim=""
  for p in $(pgrep -f "funnel train --servers 2"); do
    if grep -qz "^OMPI_COMM_WORLD_RANK=$rank$" /proc/$p/environ 2>/dev/null && grep -qz "^OMPI_MCA_orte_ess_num_procs=4$\|^OMPI_COMM_WORLD_SIZE=4$" /proc/$p/environ; then
      [[ $(tr '\0' '\n' </proc/$p/cmdline | grep -c -- "$run") -ge 1 ]] && victim=$p
    fi
  done
  [[ -n $victim ]] || { kill "$pid"; fail "$name: rank $rank not found"; }
  local t0=$SECONDS
  kill -9 "$victim"
  wait "$pid" && fail "$name: the job should fail when rank $rank dies"
  local took=$((SECONDS - t0))
  (( took <= 30 )) || fail "$name: the job took $took s to end"
  grep -q "rank $rank .*exited on signal 9" "$run.log" || { cat "$run.log"; fail "$name: lost rank $rank not named"; }
  grep -q "to continue from its last checkpoint run: .*--resume" "$run.log" || { cat "$run.log"; fail "$name: no resume command"; }
  note "$name: killed rank $rank (pid $victim), the job ended in $took s naming it and the resume command"
  job 2 2 "$data" "$run" "${flags[@]}" --resume 2>"$run.resume.log" || { cat "$run.resume.log"; fail "$name: resume failed"; }
  grep -q "resumed from" "$run.resume.log" || fail "$name: did not resume"
  [[ $(field "$run" step) == "$steps" ]] || fail "$name: resumed run ended at step $(field "$run" step), want $steps"
  [[ $(field "$run" train_examples) == $(field "$WORK/clean" train_examples) ]] || fail "$name: train_examples differ"
  for k in ctr cvr ctcvr; do
    close_to "$(metric "$run" $k auc)" "$(metric "$WORK/clean" $k auc)" 0.003 "$name: $k auc resumed vs uninterrupted"
  done
}
kill_and_resume server-killed 1   # rank 1: server 1
kill_and_resume worker-killed 3   # rank 3: worker 1

# corrupt checkpoints: the newest truncated, the next one with a flipped byte
run=$WORK/server-killed
mapfile -t cks < <(ls -d "$run"/ckpt/step-* | sort -r)
(( ${#cks[@]} >= 3 )) || fail "want 3 checkpoints kept, have ${#cks[@]}"
truncate -s 100 "${cks[0]}/server-0.bin"
f=${cks[1]}/dense.bin
printf '\x55' | dd of="$f" bs=1 seek=$(( $(stat -c %s "$f") / 2 )) conv=notrunc status=none
cp -r "$run" "$WORK/corrupt"
job 2 2 "$data" "$WORK/corrupt" "${flags[@]}" --resume 2>"$WORK/corrupt.log" || { cat "$WORK/corrupt.log"; fail "resume past corrupt checkpoints failed"; }
grep -q "checkpoint ${cks[0]#$run/}.*skipped:.*server-0.bin" "$WORK/corrupt.log" 2>/dev/null ||
  grep -q "$(basename "${cks[0]}") skipped: .*server-0.bin: .*" "$WORK/corrupt.log" || { cat "$WORK/corrupt.log"; fail "truncated shard not reported"; }
grep -q "$(basename "${cks[1]}") skipped: .*dense.bin: checksum mismatch" "$WORK/corrupt.log" || { cat "$WORK/corrupt.log"; fail "flipped byte not reported"; }
grep -q "resumed from .*$(basename "${cks[2]}")" "$WORK/corrupt.log" || { cat "$WORK/corrupt.log"; fail "did not fall back to ${cks[2]}"; }
note "corrupt checkpoints reported by name and skipped; resumed from $(basename "${cks[2]}")"
echo "test_failures: ok"
