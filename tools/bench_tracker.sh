#!/usr/bin/env bash
# make bench-tracker: how many UDP announces a tracker answers per second
# on one core, against PEERS simulated peers (half seeding one file, half
# downloading a 4 GiB one) from 1,000 loopback addresses; then the same
# load on opentracker over BEP 15. The tracker runs on core 0, the load
# generator (examples/tracker_bench.rs) on core 1. Last lines, one per
# tracker:
#   tracker-bench tracker=<t> peers=<n> announces_per_s=<r> p50_ms=<x> p99_ms=<y> cpu_us_per_announce=<z> rss_mib=<m>
# Before them, on stderr, the cost of a second tracker (TRACKERS=1: not
# measured): see tools/bench_trackers_cost.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-100000}
SECS=${SECS:-10}
# Requests outstanding at once (closed loop): enough to keep a one-core
# tracker busy, few enough that its socket buffer never overflows.
INFLIGHT=${INFLIGHT:-64}
# TRACKERS=2 (the default) also measures what a second tracker costs
# (tools/bench_trackers_cost.sh, on stderr); TRACKERS=1 skips it.
TRACKERS=${TRACKERS:-2}
. tools/lib.sh
work_dir bench-tracker

if ! command -v taskset >/dev/null; then
  echo "error: taskset not found: install util-linux (apt-get install -y util-linux)" >&2
  exit 1
fi
if [ "$(nproc)" -lt 2 ]; then
  echo "error: the tracker and the load generator need a core each; this machine has $(nproc)" >&2
  exit 1
fi

lines=()
failed=0

# bench NAME PORT PID: the load generator against the tracker at PORT. In
# the background, so that a signal ends the run at once (bash runs traps
# only between foreground commands, but during `wait`).
bench() {
  taskset -c 1 "$BIN/examples/tracker_bench" --tracker "$1" --addr "127.0.0.1:$2" \
    --pid "$3" --peers "$PEERS" --secs "$SECS" --inflight "$INFLIGHT" > "$WORK/$1.out" &
  local gen=$!
  PIDS+=("$gen")
  if wait "$gen"; then
    lines+=("$(cat "$WORK/$1.out")")
  else
    echo "error: the $1 run failed (its log: above)" >&2
    failed=1
  fi
}

# stop PID: ends one tracker before the next starts, so each has core 0 alone.
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# p2pshare: records over TCP, announces over UDP, on the same port.
port=$(free_port 18700)
taskset -c 0 "$BIN/tracker" --port "$port" --bind 127.0.0.1 --data "$WORK/tracker" \
  > "$WORK/tracker.log" 2>&1 &
pid=$!
PIDS+=("$pid")
wait_for 10 "the tracker" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
echo "p2pshare tracker (pid $pid, core 0) on 127.0.0.1:$port: $PEERS peers, $SECS s" >&2
bench p2pshare "$port" "$pid"
stop "$pid"
[ "$failed" -eq 0 ] || tail -n 20 "$WORK/tracker.log" >&2

# opentracker: Debian's build tracks only whitelisted info hashes, so it
# gets a whitelist of the two the load generator uses.
if ! command -v opentracker >/dev/null && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing opentracker (apt-get install -y opentracker)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y opentracker > "$WORK/apt.log" 2>&1 ||
    { tail -n 5 "$WORK/apt.log" >&2; echo "warning: could not install opentracker" >&2; }
fi
if command -v opentracker >/dev/null; then
  # Run as root, opentracker chroots into -d and becomes nobody: the
  # whitelist is named relative to that directory, readable by all.
  mkdir -p "$WORK/ot"
  "$BIN/examples/tracker_bench" whitelist > "$WORK/ot/whitelist.txt"
  chmod 755 "$WORK/ot"
  chmod 644 "$WORK/ot/whitelist.txt"
  port=$(free_port $((port + 1)))
  taskset -c 0 opentracker -i 127.0.0.1 -p "$port" -P "$port" -d "$WORK/ot" -w whitelist.txt \
    > "$WORK/opentracker.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_for 10 "opentracker" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
  echo "opentracker (pid $pid, core 0) on 127.0.0.1:$port: $PEERS peers, $SECS s" >&2
  bench opentracker "$port" "$pid"
  stop "$pid"
else
  echo "opentracker is not installed, so it is left out: sudo apt-get install -y opentracker" >&2
fi

# ---- the cost of a second tracker (docs/PERFORMANCE.md, *Several trackers*)
if [ "$TRACKERS" = 2 ] && [ "$failed" -eq 0 ]; then
  tools/bench_trackers_cost.sh "$PEERS" "$SECS" "$INFLIGHT" >&2 || failed=1
fi

echo >&2
printf '%s\n' "${lines[@]}"
exit "$failed"
