#!/usr/bin/env bash
# make failover: the swarm of make swarm (one seeder, N leechers, every
# upload capped at LIMIT, all on loopback) with two trackers; the first is
# killed with SIGKILL KILL_AT seconds after the leechers start and never
# restarted. Then a newcomer whose first-named tracker is the dead one
# lists and gets the file, and a tracker started empty on the dead one's
# port is timed until it lists the file with every live holder.
#
#   make failover N=16 SIZE=32M LIMIT=2M KILL_AT=5   (the defaults)
#
# Last line:
#   failover trackers=2 N=<n> size=<bytes> limit=<B/s> kill_at=<s> secs=<s> tstar=<s> ratio=<r> newcomer_secs=<s> relearn_secs=<s> holders=<h>
# secs: the last leecher's time; ratio: secs / T*, T* = max(F/u_s,
# N*F/(u_s + N*u)); relearn_secs: from the empty tracker's start until it
# lists all N+1 holders. Target: ratio <= 1.35, relearn_secs <= 20.
# KEEP=1 keeps the work directory (logs).
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib.sh

N=${N:-16}
SIZE=${SIZE:-32M}
LIMIT=${LIMIT:-2M}
KILL_AT=${KILL_AT:-5}
KEEP=${KEEP:-0}
NAME=failover.bin

whole N 1 100
case "$KILL_AT" in '' | *[!0-9.]*) echo "error: KILL_AT must be a number of seconds, got '$KILL_AT'" >&2; exit 2 ;; esac
F=$(size_bytes "$SIZE") || exit 2
U=$(size_bytes "$LIMIT") || exit 2
need_bins tracker peer

work_dir failover

# tracker NAME PORT: starts a tracker with its own data directory; sets TPID.
tracker() {
  "$BIN/tracker" --port "$2" --bind 127.0.0.1 --data "$WORK/$1" > "$WORK/$1.log" 2>&1 &
  TPID=$!
  PIDS+=("$TPID")
  wait_for 10 "tracker $1" bash -c "exec 3<>/dev/tcp/127.0.0.1/$2"
}

p=$((10000 + RANDOM % 20000))
p1=$(free_port "$p"); p2=$(free_port $((p1 + 1)))
t1="127.0.0.1:$p1"; t2="127.0.0.1:$p2"
tracker t1 "$p1"; pid1=$TPID
tracker t2 "$p2"

echo "failover: 1 seeder + $N leechers, $SIZE file ($F bytes), every upload $LIMIT/s; trackers $t1 (killed ${KILL_AT}s in) and $t2"
tools/mkfile "$WORK/S/files/$NAME" "$SIZE"
want=$(md5_of "$WORK/S/files/$NAME")
port=$(free_port $((p2 + 1)))
"$BIN/peer" S "$port" "$t1" --tracker "$t2" --dir "$WORK/S" --serve --upload-limit "$LIMIT" \
  > >(stamp > "$WORK/S.log") 2>&1 &
PIDS+=($!)
wait_for 120 "the seeder on $t1" holds "$t1" "$NAME" S
wait_for 30 "the seeder on $t2" holds "$t2" "$NAME" S

# Half the leechers name the doomed tracker first, half second.
t0=$EPOCHREALTIME
LEECH=()
for i in $(seq 1 "$N"); do
  port=$(free_port $((port + 1)))
  if [ $((i % 2)) = 0 ]; then first=$t1 second=$t2; else first=$t2 second=$t1; fi
  "$BIN/peer" "L$i" "$port" "$first" --tracker "$second" --dir "$WORK/L$i" \
    --serve --get "$NAME" --upload-limit "$LIMIT" > >(stamp > "$WORK/L$i.log") 2>&1 &
  PIDS+=($!)
  LEECH+=($!)
done
# KILL_AT from the first leecher's start (starting them all takes a while).
sleep "$(awk -v a="$t0" -v z="$EPOCHREALTIME" -v k="$KILL_AT" 'BEGIN {w = k - (z - a); printf "%.3f", (w > 0) ? w : 0}')"
kill -KILL "$pid1"
wait "$pid1" 2>/dev/null || true
echo "killed the tracker at $t1 (SIGKILL) $(awk -v a="$t0" -v z="$EPOCHREALTIME" 'BEGIN {printf "%.1f", z - a}') s in"

cs=$(awk -v n="$N" -v f="$F" -v u="$U" 'BEGIN {printf "%.3f", n * f / u}')
allowed=$(awk -v cs="$cs" 'BEGIN {printf "%d", 30 + 1.5 * cs}')
wait_leechers "$WORK" "$t0" "$allowed" "" "the swarm did not finish within $allowed s"
for i in $(seq 1 "$N"); do
  got=$(md5_of "$WORK/L$i/files/$NAME")
  [ "$got" = "$want" ] || { echo "error: L$i has a corrupt copy (md5 $got, not $want)" >&2; exit 1; }
done
secs=$(slowest)
echo "all $N leechers done and verified; the last after $secs s"

# A newcomer naming the dead tracker first.
port=$(free_port $((port + 1)))
n0=$EPOCHREALTIME
printf 'files\nget %s\nstatus\n' "$NAME" |
  "$BIN/peer" NEW "$port" "$t1" --tracker "$t2" --dir "$WORK/NEW" > "$WORK/NEW.log" 2>&1 ||
  { echo "error: the newcomer failed; its log:" >&2; tail -20 "$WORK/NEW.log" >&2; exit 1; }
newcomer=$(awk -v a="$n0" -v z="$EPOCHREALTIME" 'BEGIN {printf "%.3f", z - a}')
grep -q "^$NAME $F " "$WORK/NEW.log" || { echo "error: the newcomer's files did not list $NAME" >&2; exit 1; }
[ "$(md5_of "$WORK/NEW/files/$NAME")" = "$want" ] || { echo "error: the newcomer's copy is corrupt" >&2; exit 1; }
grep "^tracker " "$WORK/NEW.log" || true
echo "the newcomer (dead tracker first) listed and got the file in $newcomer s"

# A tracker started empty on the dead one's port: every live holder (the
# seeder and the leechers) again, from their announces alone.
blocks=$(( (F + 4095) / 4096 ))
complete_holders() {
  printf 'whohas %s\n' "$NAME" |
    "$BIN/peer" probe$$ "$(free_port 29000)" "$t1" --dir "$WORK/probe" 2>/dev/null |
    grep -c " $blocks/$blocks\$" || true
}
r0=$EPOCHREALTIME
tracker t3 "$p1"
holders=0
until [ "$holders" -ge $((N + 1)) ]; do
  if awk -v a="$r0" -v z="$EPOCHREALTIME" 'BEGIN {exit !(z - a > 60)}'; then
    echo "error: the empty tracker lists $holders of $((N + 1)) holders after 60 s" >&2
    exit 1
  fi
  sleep 0.2
  holders=$(complete_holders)
done
relearn=$(awk -v a="$r0" -v z="$EPOCHREALTIME" 'BEGIN {printf "%.3f", z - a}')
echo "the empty tracker on $t1 listed all $holders holders $relearn s after it started"

awk -v n="$N" -v f="$F" -v u="$U" -v secs="$secs" -v k="$KILL_AT" -v nc="$newcomer" \
  -v rl="$relearn" -v h="$holders" 'BEGIN {
  a = f / u; b = n * f / (u + n * u); tstar = (a > b) ? a : b
  ratio = secs / tstar
  printf "%-36s %9.3f s   max(F/u_s, N*F/(u_s+N*u))\n", "lower bound T*", tstar
  printf "%-36s %9.3f     target <= 1.35: %s\n", "swarm / T*", ratio, (ratio <= 1.35) ? "met" : "missed"
  printf "%-36s %9.3f s   target <= 20: %s\n", "empty tracker relearned in", rl, (rl <= 20) ? "met" : "missed"
  printf "failover trackers=2 N=%d size=%d limit=%d kill_at=%s secs=%.3f tstar=%.3f ratio=%.3f newcomer_secs=%.3f relearn_secs=%.3f holders=%d\n", \
    n, f, u, k, secs, tstar, ratio, nc, rl, h
}'
