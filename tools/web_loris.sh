#!/usr/bin/env bash
# make web-loris: a slow-loris against a peer's web UI from its own
# address (docs/SECURITY.md, the web UI). CONNS connections from 127.0.0.1 each send a
# header byte every second for SECS seconds (examples/web_loris.rs), while
# LOADS page loads are spread over the same time; then the peer's log lines
# and its /metrics count of refused connections. Last line:
#   web-loris conns=<n> secs=<s> loads=<l> served=<k> log_lines=<m> refused=<r> result=pass|FAIL
# Passes with at least 90 % of the loads served and at most 200 log lines.
#   make web-loris CONNS=300 SECS=20 LOADS=20   (the defaults)
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-300}
SECS=${SECS:-20}
LOADS=${LOADS:-20}
. tools/lib.sh
work_dir web-loris
need_bins tracker peer examples/web_loris

if [ "$(ulimit -n)" -lt $((CONNS * 2 + 256)) ]; then
  ulimit -n $((CONNS * 2 + 256)) 2>/dev/null || {
    echo "error: $CONNS connections need about $((CONNS * 2)) file descriptors; raise the limit with ulimit -n" >&2
    exit 1
  }
fi

tport=$(free_port 18900)
"$BIN/tracker" --port "$tport" --bind 127.0.0.1 --data "$WORK/tracker" > "$WORK/tracker.log" 2>&1 &
PIDS+=($!)
wait_for 10 "the tracker" bash -c "exec 3<>/dev/tcp/127.0.0.1/$tport"

pport=$(free_port $((tport + 1)))
hport=$(free_port $((pport + 1)))
mkdir -p "$WORK/A/files"
# The peer's own log level (info): every line it writes counts.
"$BIN/peer" A "$pport" "127.0.0.1:$tport" --dir "$WORK/A" --serve --http "$hport" \
  > "$WORK/peer.log" 2>&1 &
PIDS+=($!)
wait_for 10 "the web UI" bash -c "exec 3<>/dev/tcp/127.0.0.1/$hport"
before=$(wc -l < "$WORK/peer.log")

echo "== $CONNS trickling connections to the web UI at 127.0.0.1:$hport for $SECS s, $LOADS page loads" >&2
line=$("$BIN/examples/web_loris" --addr "127.0.0.1:$hport" --conns "$CONNS" --secs "$SECS" --loads "$LOADS")
after=$(wc -l < "$WORK/peer.log")
refused=$( (exec 3<>"/dev/tcp/127.0.0.1/$hport"
  printf 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
  cat <&3) | sed -n 's/^p2pshare_web_connections_refused_total \([0-9]*\).*/\1/p')
served=$(sed -n 's/.* served=\([0-9]*\).*/\1/p' <<< "$line")
lines=$((after - before))
echo "== the peer's log lines during the run (first 5):" >&2
sed -n "$((before + 1)),$((before + 5))p" "$WORK/peer.log" >&2
result=pass
if [ $((served * 10)) -lt $((LOADS * 9)) ] || [ "$lines" -gt 200 ]; then result=FAIL; fi
echo "${line% reconnects=*} log_lines=$lines refused=${refused:-?} ${line##* } result=$result"
[ "$result" = pass ]
