#!/usr/bin/env bash
# make many-peers PEERS=400: that many real `peer --serve` processes, all
# from 127.0.0.1, each sharing the same file; passes when another peer's
# `files` lists every one of them as a holder. Prints the tracker's
# thread count and memory with them all registered.
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-400}
. tools/lib.sh
work_dir many

if [ "$(ulimit -n)" -lt $((PEERS * 4 + 64)) ]; then
  ulimit -n $((PEERS * 4 + 64)) 2>/dev/null || {
    echo "error: $PEERS peers need about $((PEERS * 4)) file descriptors; raise the limit with ulimit -n" >&2
    exit 1
  }
fi
tport=$(free_port 18500)
"$BIN/tracker" --port "$tport" --bind 127.0.0.1 --data "$WORK/tracker" > "$WORK/tracker.log" 2>&1 &
tpid=$!
PIDS+=("$tpid")
wait_for 10 "the tracker" bash -c "exec 3<>/dev/tcp/127.0.0.1/$tport"

tools/mkfile "$WORK/lab.bin" 64K >/dev/null
started=$SECONDS
port=30000
echo "== starting $PEERS peers on 127.0.0.1"
for i in $(seq 1 "$PEERS"); do
  port=$(free_port $((port + 1)))
  mkdir -p "$WORK/p$i/files"
  cp "$WORK/lab.bin" "$WORK/p$i/files/"
  RUST_LOG=warn "$BIN/peer" "p$i" "$port" "127.0.0.1:$tport" --dir "$WORK/p$i" --serve \
    > "$WORK/p$i.log" 2>&1 &
  PIDS+=($!)
done

# holders=N from another peer's `files`.
listed() {
  printf 'files\n' | "$BIN/peer" probe "$(free_port 29000)" "127.0.0.1:$tport" --dir "$WORK/probe" 2>/dev/null |
    sed -n 's/^lab\.bin .* holders=\([0-9]*\) .*/\1/p'
}
n=0
deadline=$((SECONDS + 120))
while :; do
  n=$(listed || true)
  n=${n:-0}
  printf '\r  listed as holders: %s of %s' "$n" "$PEERS"
  [ "$n" -ge "$PEERS" ] && break
  if [ $SECONDS -ge $deadline ]; then
    echo; echo "error: only $n of $PEERS peers listed after 120 s (see $WORK)" >&2
    KEEP=1; exit 1
  fi
  sleep 1
done
echo
threads=$(awk '/^Threads:/ {print $2}' "/proc/$tpid/status")
rss=$(awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$tpid/status")
echo "many-peers peers=$PEERS listed=$n tracker_threads=$threads tracker_rss_mib=$rss secs=$((SECONDS - started))"
if [ "$threads" -gt 64 ]; then
  echo "error: the tracker runs $threads threads (at most 64)" >&2
  exit 1
fi
