#!/usr/bin/env bash
# make soak: a swarm under churn. A tracker, a seeder and LEECHERS leechers
# on loopback, every upload capped at LIMIT so the swarm takes minutes;
# for SOAK_SECS, every few seconds a random leecher is killed with SIGKILL
# and started again a moment later, and now and then the tracker too (same
# port, same data directory). Then the churn stops, every peer is running,
# and the swarm finishes. Passes (exit 0) when every leecher's copy has the
# original's MD5 and no `files/` holds anything but that one file (no
# partial download, no temporary file).
#
#   SOAK_SECS=180 LEECHERS=8 SIZE=32M LIMIT=256K SEED=<random> tools/soak.sh
#
# Last line: `soak secs=<churn> leechers=<n> size=<bytes> limit=<B/s>
# leecher_kills=<k> tracker_kills=<t> total_secs=<s> copies=<ok>/<n>
# result=pass|FAIL`. KEEP=1 keeps the work directory (logs).
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib.sh

SOAK_SECS=${SOAK_SECS:-180}
LEECHERS=${LEECHERS:-8}
SIZE=${SIZE:-32M}
LIMIT=${LIMIT:-256K}
SEED=${SEED:-$RANDOM}
KEEP=${KEEP:-0}
NAME=soak.bin
# After the churn, how long the swarm may take to finish.
FINISH_SECS=${FINISH_SECS:-900}

whole SOAK_SECS
whole LEECHERS 1 64
whole SEED
whole FINISH_SECS
F=$(size_bytes "$SIZE") || exit 2
U=$(size_bytes "$LIMIT") || exit 2
for b in peer tracker; do
  [ -x "$BIN/$b" ] || { echo "error: $BIN/$b is missing: run 'make build' (or make soak, which builds)" >&2; exit 1; }
done
RANDOM=$SEED

# The processes running now, for the teardown (a restarted one has a new pid).
teardown_hook() { PIDS=("${PID[@]}" ${TPID:+"$TPID"}); }
work_dir soak

# Ports below the ephemeral range, from a random base (see swarm.sh).
p=$((10000 + RANDOM % 20000))
tport=$(free_port "$p")
p=$tport
PORT=()
for i in $(seq 0 "$LEECHERS"); do
  p=$(free_port $((p + 1)))
  PORT+=("$p")
done
taddr="127.0.0.1:$tport"

echo "soak: tracker, seeder and $LEECHERS leechers on loopback, $SIZE file ($F bytes), uploads $LIMIT/s, churn for $SOAK_SECS s (SEED=$SEED)"

# ---- processes: index 0 is the seeder, i the leecher Li; their pids
declare -a PID=()
TPID=
start_tracker() {
  "$BIN/tracker" --port "$tport" --bind 127.0.0.1 --data "$WORK/tracker" >> "$WORK/tracker.log" 2>&1 &
  TPID=$!
}
start_peer() {
  local i=$1 id dir
  if [ "$i" -eq 0 ]; then id=S; else id="L$i"; fi
  dir="$WORK/$id"
  echo "--- started $(date +%T)" >> "$WORK/$id.log"
  "$BIN/peer" "$id" "${PORT[$i]}" "$taddr" --dir "$dir" --serve --get "$NAME" \
    --upload-limit "$LIMIT" >> "$WORK/$id.log" 2>&1 &
  PID[i]=$!
}
alive() { kill -0 "$1" 2>/dev/null; }
# SIGKILL, as a crash or a power cut would; waits so the port is free.
crash() { kill -KILL "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

start_tracker
wait_for 10 "the tracker" bash -c "exec 3<>/dev/tcp/127.0.0.1/$tport"
tools/mkfile "$WORK/S/files/$NAME" "$SIZE"
want=$(md5_of "$WORK/S/files/$NAME")
start_peer 0
wait_for 120 "the seeder to register $NAME" holds "$taddr" "$NAME" S
for i in $(seq 1 "$LEECHERS"); do start_peer "$i"; done

# ---- churn
t0=$SECONDS
kills=0
tkills=0
next_tracker=$((t0 + 20 + RANDOM % 20))
while [ $((SECONDS - t0)) -lt "$SOAK_SECS" ]; do
  sleep $((2 + RANDOM % 5))
  i=$((1 + RANDOM % LEECHERS))
  crash "${PID[$i]}"
  kills=$((kills + 1))
  echo "--- SIGKILL $(date +%T)" >> "$WORK/L$i.log"
  if [ "$SECONDS" -ge "$next_tracker" ]; then
    crash "$TPID"
    tkills=$((tkills + 1))
    echo "--- SIGKILL $(date +%T)" >> "$WORK/tracker.log"
    sleep $((1 + RANDOM % 3))
    start_tracker
    next_tracker=$((SECONDS + 20 + RANDOM % 20))
  fi
  sleep $((RANDOM % 3))
  start_peer "$i"
  have=0
  for j in $(seq 1 "$LEECHERS"); do [ ! -f "$WORK/L$j/files/$NAME" ] || have=$((have + 1)); done
  printf 'soak: %4d s, %d leecher kills, %d tracker kills, %d/%d leechers have the file\n' \
    $((SECONDS - t0)) "$kills" "$tkills" "$have" "$LEECHERS"
done

# ---- the end: everyone runs (a crashed process would be a failure), the
# swarm finishes, then everyone stops cleanly.
for i in $(seq 0 "$LEECHERS"); do
  alive "${PID[$i]}" || { echo "error: peer $i exited on its own; see its log" >&2; tail -5 "$WORK/$([ "$i" -eq 0 ] && echo S || echo "L$i").log" >&2; exit 1; }
done
alive "$TPID" || { echo "error: the tracker exited on its own" >&2; tail -5 "$WORK/tracker.log" >&2; exit 1; }
deadline=$((SECONDS + FINISH_SECS))
while :; do
  have=0
  for j in $(seq 1 "$LEECHERS"); do [ ! -f "$WORK/L$j/files/$NAME" ] || have=$((have + 1)); done
  [ "$have" -lt "$LEECHERS" ] || break
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "error: $have of $LEECHERS leechers finished within $FINISH_SECS s of the churn's end; KEEP=1 keeps the logs" >&2
    exit 1
  fi
  sleep 1
done
total=$((SECONDS - t0))
PIDS=("${PID[@]}" "$TPID")
cleanup
PID=()
TPID=

# ---- every copy, and nothing else
ok=0
stray=()
for i in $(seq 0 "$LEECHERS"); do
  if [ "$i" -eq 0 ]; then id=S; else id="L$i"; fi
  files="$WORK/$id/files"
  got=$(md5_of "$files/$NAME" 2>/dev/null || echo missing)
  if [ "$got" = "$want" ]; then
    [ "$i" -eq 0 ] || ok=$((ok + 1))
  else
    echo "error: $id's copy has md5 $got, the original's is $want" >&2
  fi
  while IFS= read -r f; do
    [ "$f" = "$NAME" ] || stray+=("$id/files/$f")
  done < <(ls -A "$files")
done
for s in "${stray[@]}"; do echo "error: stray file $s" >&2; done
result=pass
[ "$ok" -eq "$LEECHERS" ] && [ "${#stray[@]}" -eq 0 ] || result=FAIL
echo "soak secs=$SOAK_SECS leechers=$LEECHERS size=$F limit=$U leecher_kills=$kills tracker_kills=$tkills total_secs=$total copies=$ok/$LEECHERS result=$result"
[ "$result" = pass ]
