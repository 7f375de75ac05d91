#!/usr/bin/env bash
# The cost of the swarm secret: one SIZE transfer between two peers on
# loopback in an open swarm and in one with --secret-file (every byte
# through Noise_NNpsk0 with AES-256-GCM), the two taking turns, each
# timed as the whole `get` process from start to exit. Prints both
# medians and their ratio (the target is >= 0.85). MB = 10^6 bytes.
# RT=1 (root only): under SCHED_FIFO, as tools/bench.sh.
#   SIZE=256M RUNS=5 tools/bench_secret.sh   (make bench runs it last)
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib.sh
realtime "$@"
SIZE=${SIZE:-256M}
RUNS=${RUNS:-5}
work_dir bench-secret

# Ports from a random base: other runs on this machine (another
# checkout's bench) must not find our tracker where theirs used to be.
BASE=$((20000 + RANDOM % 20000))

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

mkdir -p "$WORK/open/files" "$WORK/sealed/files"
tools/mkfile "$WORK/open/files/big.bin" "$SIZE"
file="$WORK/open/files/big.bin"
ln "$file" "$WORK/sealed/files/big.bin"
bytes=$(stat -c %s "$file")
cat "$file" > /dev/null   # into the page cache, for both
(umask 077; openssl rand -hex 32 > "$WORK/secret")

# swarm NAME [--secret-file FILE]: a tracker and a seeder of big.bin;
# prints the tracker's address.
swarm() {
  local name=$1; shift
  local tport
  tport=$(free_port $((BASE + ${#PIDS[@]} * 10)))
  "$BIN/tracker" --port "$tport" --bind 127.0.0.1 --data "$WORK/$name-tracker" "$@" > "$WORK/$name-tracker.log" 2>&1 &
  PIDS+=($!)
  wait_for 10 "the $name tracker" bash -c "exec 3<>/dev/tcp/127.0.0.1/$tport"
  "$BIN/peer" A "$(free_port $((BASE + 100 + ${#PIDS[@]} * 10)))" "127.0.0.1:$tport" --dir "$WORK/$name" --serve "$@" > "$WORK/$name-A.log" 2>&1 &
  PIDS+=($!)
  TRACKER="127.0.0.1:$tport"
}

# held TRACKER ARGS...: the seeder is listed as a holder.
held() {
  local t=$1; shift
  printf 'whohas big.bin\n' | "$BIN/peer" probe$$ "$(free_port $((BASE + 200)))" "$t" --dir "$WORK/probe" "$@" 2>/dev/null | grep -q '^A '
}

swarm open; open_tracker=$TRACKER
swarm sealed --secret-file "$WORK/secret"; sealed_tracker=$TRACKER
wait_for 120 "the open seeder" held "$open_tracker"
wait_for 120 "the sealed seeder" held "$sealed_tracker" --secret-file "$WORK/secret"

# get TRACKER ARGS...: MB/s of one whole `get big.bin` process.
get() {
  local t=$1; shift
  rm -rf "$WORK/B"
  local t0 t1
  t0=$EPOCHREALTIME
  printf 'get big.bin\n' | RUST_LOG=info "$BIN/peer" B "$(free_port $((BASE + 300)))" "$t" --dir "$WORK/B" "$@" > "$WORK/B.out" 2> "$WORK/B.err" || true
  t1=$EPOCHREALTIME
  cmp -s "$file" "$WORK/B/files/big.bin" || {
    echo "error: a transfer ($*) failed or produced a different file:" >&2
    cat "$WORK/B.out" "$WORK/B.err" >&2
    tail -n 20 "$WORK"/*.log >&2
    exit 1
  }
  awk -v b="$bytes" -v a="$t0" -v z="$t1" 'BEGIN {print b / 1e6 / (z - a)}'
}

open=() sealed=()
for run in $(seq 1 "$RUNS"); do
  open+=("$(get "$open_tracker")")
  sealed+=("$(get "$sealed_tracker" --secret-file "$WORK/secret")")
  printf '  run %s: open %.1f MB/s, with a secret %.1f MB/s\n' "$run" "${open[-1]}" "${sealed[-1]}"
done
m_open=$(printf '%s\n' "${open[@]}" | median)
m_sealed=$(printf '%s\n' "${sealed[@]}" | median)
printf '\n%-42s %10s\n' "one $SIZE file, whole get process, median of $RUNS" "MB/s"
printf '%-42s %10.1f\n' "p2pshare, open swarm" "$m_open" "p2pshare, --secret-file (encrypted)" "$m_sealed"
printf '%-42s %10.2f\n' "secret / open (target >= 0.85)" "$(awk -v s="$m_sealed" -v o="$m_open" 'BEGIN {print s / o}')"
