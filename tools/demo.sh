#!/usr/bin/env bash
# make demo: a tracker, one seeder with a generated file and three leechers on
# loopback; shows progress, verifies every copy, tears everything down.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${SIZE:-64M}
LEECHERS=${LEECHERS:-3}
LIMIT=${LIMIT:-16M}   # per-leecher download cap, so progress is visible
. tools/lib.sh
need_bins tracker peer
work_dir demo

tport=$(free_port 18000)
echo "== tracker on 127.0.0.1:$tport"
"$BIN/tracker" --port "$tport" --bind 127.0.0.1 --data "$WORK/tracker" > "$WORK/tracker.log" 2>&1 &
PIDS+=($!)
wait_for 10 "the tracker" bash -c "exec 3<>/dev/tcp/127.0.0.1/$tport"

echo "== seeder S with a $SIZE file of random bytes"
tools/mkfile "$WORK/S/files/demo.bin" "$SIZE"
want=$(md5_of "$WORK/S/files/demo.bin")
"$BIN/peer" S "$(free_port 19000)" "127.0.0.1:$tport" --dir "$WORK/S" --serve > "$WORK/S.log" 2>&1 &
PIDS+=($!)
wait_for 20 "the seeder to register" holds "127.0.0.1:$tport" demo.bin S

echo "== $LEECHERS leechers fetch demo.bin (each capped at $LIMIT/s)"
port=19100
for i in $(seq 1 "$LEECHERS"); do
  port=$(free_port $((port + 1)))
  "$BIN/peer" "L$i" "$port" "127.0.0.1:$tport" --dir "$WORK/L$i" --serve --get demo.bin \
    --download-limit "$LIMIT" > "$WORK/L$i.log" 2>&1 &
  PIDS+=($!)
done

total=$(stat -c %s "$WORK/S/files/demo.bin")
deadline=$((SECONDS + 50))
while :; do
  line="" finished=0
  for i in $(seq 1 "$LEECHERS"); do
    if grep -q '^done ' "$WORK/L$i.log" 2>/dev/null; then
      pct=100; finished=$((finished + 1))
    elif [ -f "$WORK/L$i/partial/demo.bin.part" ]; then
      got=$(( $(du -k "$WORK/L$i/partial/demo.bin.part" | cut -f1) * 1024 ))
      pct=$(( got * 100 / total )); [ $pct -gt 99 ] && pct=99
    else
      pct=0
    fi
    line+=$(printf 'L%s %3d%%  ' "$i" "$pct")
  done
  printf '\r  %s' "$line"
  [ "$finished" -eq "$LEECHERS" ] && break
  if grep -q '^error: ' "$WORK"/L*.log; then echo; grep -h '^error: ' "$WORK"/L*.log; exit 1; fi
  if [ $SECONDS -ge $deadline ]; then echo; echo "error: the demo did not finish in time" >&2; exit 1; fi
  sleep 0.5
done
echo

echo "== results"
for i in $(seq 1 "$LEECHERS"); do
  got=$(md5_of "$WORK/L$i/files/demo.bin")
  grep -E '^(done|from) ' "$WORK/L$i.log" | sed "s/^/  L$i: /"
  if [ "$got" != "$want" ]; then echo "error: L$i has a corrupt copy ($got, want $want)" >&2; exit 1; fi
done
echo "== all $LEECHERS copies verified (md5 $want); stopping"
