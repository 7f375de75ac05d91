#!/usr/bin/env bash
# make nearfar: one download from two holders, one near and one far.
# NEAR serves directly; FAR serves behind a proxy that holds every byte
# RTT/2 each way (examples/delay_proxy), and tells the tracker to send
# peers there. Both uploads are capped at LIMIT. Prints each holder's share
# of the blocks (the leecher's `from` lines) and the download's time against
# the ideal SIZE / (2 x LIMIT), when both links would be full from the start.
#
#   make nearfar SIZE=48M LIMIT=8M RTT=50 RUNS=1   (the defaults)
#   make nearfar LIMIT=0      both uploads uncapped: the far share only
#
# Last line per run: `nearfar ... far_share=... secs=... ideal=... ratio=...`.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib.sh

SIZE=${SIZE:-48M}
LIMIT=${LIMIT:-8M}
RTT=${RTT:-50}
RUNS=${RUNS:-1}
KEEP=${KEEP:-0}
NAME=f.bin
whole RTT 0 10000
whole RUNS 1 50
F=$(size_bytes "$SIZE") || exit 2
U=$(size_bytes "$LIMIT") || exit 2
[ "$F" -ge 4096 ] || { echo "error: SIZE must be at least 4K, got $SIZE" >&2; exit 2; }
need_bins peer tracker examples/delay_proxy

work_dir nearfar

limit=()
[ "$U" -eq 0 ] || limit=(--upload-limit "$LIMIT")
tools/mkfile "$WORK/src.bin" "$SIZE"

# from_line HOLDER LOG: the blocks and RTT of the leecher's `from HOLDER` line.
from_line() {
  awk -v h="$1" '$2 == "from" && $3 == h {sub("blocks=", "", $4); sub("rtt_ms=", "", $5); print $4, $5}' "$2"
}

# run K: a fresh tracker, holders and leecher; prints the run's line.
run() {
  local k=$1 dir=$WORK/run$1 p tport nport fport pport
  PIDS=()
  p=$((10000 + RANDOM % 20000))
  tport=$(free_port "$p"); nport=$(free_port $((tport + 1)))
  fport=$(free_port $((nport + 1))); p=$(free_port $((fport + 1)))
  local taddr=127.0.0.1:$tport
  "$BIN/tracker" --port "$tport" --bind 127.0.0.1 --data "$dir/tracker" > "$dir.tracker.log" 2>&1 &
  PIDS+=($!)
  wait_for 10 "the tracker" bash -c "exec 3<>/dev/tcp/127.0.0.1/$tport"
  for h in NEAR FAR; do
    mkdir -p "$dir/$h/files"
    cp "$WORK/src.bin" "$dir/$h/files/$NAME"
  done
  "$BIN/examples/delay_proxy" "$fport" $((RTT / 2)) > "$dir.proxy" &
  PIDS+=($!)
  wait_for 10 "the delay proxy" grep -q port= "$dir.proxy"
  pport=$(sed -n 's/.*port=//p' "$dir.proxy")
  "$BIN/peer" NEAR "$nport" "$taddr" --dir "$dir/NEAR" --serve "${limit[@]}" > "$dir.NEAR.log" 2>&1 &
  PIDS+=($!)
  "$BIN/peer" FAR "$fport" "$taddr" --dir "$dir/FAR" --serve --advertise "127.0.0.1:$pport" \
    "${limit[@]}" > "$dir.FAR.log" 2>&1 &
  PIDS+=($!)
  WORK=$dir wait_for 120 "NEAR to register" holds "$taddr" "$NAME" NEAR
  WORK=$dir wait_for 120 "FAR to register" holds "$taddr" "$NAME" FAR

  local t0=$EPOCHREALTIME
  in_background "$BIN/peer" G "$p" "$taddr" --dir "$dir/G" --get "$NAME" > >(stamp > "$dir.G.log") 2>&1 < /dev/null
  local t1=$EPOCHREALTIME
  sleep 0.1
  cmp -s "$WORK/src.bin" "$dir/G/files/$NAME" ||
    { echo "error: run $k: the downloaded copy differs from the source; log: $dir.G.log" >&2; KEEP=1; exit 1; }
  local near far rn rf
  read -r near rn < <(from_line NEAR "$dir.G.log")
  read -r far rf < <(from_line FAR "$dir.G.log")
  awk -v k="$k" -v n="${near:-0}" -v f="${far:-0}" -v rn="${rn:-0}" -v rf="${rf:-0}" \
      -v a="$t0" -v z="$t1" -v size="$F" -v u="$U" -v rtt="$RTT" 'BEGIN {
    secs = z - a
    share = (n + f) ? f / (n + f) : 0
    if (u > 0) { ideal = size / (2 * u); printf "nearfar run=%d rtt_ms=%d near_blocks=%d far_blocks=%d near_rtt_ms=%.1f far_rtt_ms=%.1f far_share=%.3f secs=%.3f ideal=%.3f ratio=%.3f\n", k, rtt, n, f, rn, rf, share, secs, ideal, secs / ideal }
    else printf "nearfar run=%d rtt_ms=%d near_blocks=%d far_blocks=%d near_rtt_ms=%.1f far_rtt_ms=%.1f far_share=%.3f secs=%.3f uncapped\n", k, rtt, n, f, rn, rf, share, secs
  }'
  cleanup
}

echo "nearfar: $SIZE file, NEAR and FAR (RTT ${RTT} ms through a delay proxy), uploads capped at ${LIMIT}/s"
for k in $(seq 1 "$RUNS"); do
  mkdir -p "$WORK/run$k"
  run "$k"
done
