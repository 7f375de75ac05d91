#!/usr/bin/env bash
# What a second tracker costs (docs/PERFORMANCE.md, *Several trackers*), from
# make bench-tracker (TRACKERS=2):
#  1. memory: PEERS simulated peers announce to two p2pshare trackers at
#     once (one load generator each, as a peer tells every tracker); each
#     tracker's RSS against the one-tracker run's. Both trackers share
#     core 0 here, so each answers about half the one-tracker rate: on
#     their own hosts each would answer as one does.
#  2. announce traffic: COST_PEERS real idle peers (`peer --serve`, one
#     small file each) for SECS with one tracker, then with two; the
#     datagrams each tracker received per second (its /metrics) and what
#     each peer sent in all.
# Lines (stderr of make bench-tracker):
#   tracker-cost memory trackers=2 tracker=<i> peers=<n> announces_per_s=<r> rss_mib=<m>
#   tracker-cost traffic trackers=<1|2> peers=<n> datagrams_per_s_per_tracker=<r> datagrams_per_s_per_peer=<r> tracker_rss_mib=<m>
#   usage: tools/bench_trackers_cost.sh PEERS SECS INFLIGHT
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib.sh
PEERS=$1 SECS=$2 INFLIGHT=$3
COST_PEERS=${COST_PEERS:-20}
work_dir tracker-cost

# tracker NAME PORT [ARGS]: a tracker on core 0; sets TPID.
tracker() {
  local name=$1 port=$2; shift 2
  taskset -c 0 "$BIN/tracker" --port "$port" --bind 127.0.0.1 --data "$WORK/$name" "$@" \
    > "$WORK/$name.log" 2>&1 &
  TPID=$!
  PIDS+=("$TPID")
  wait_for 10 "tracker $name" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
}
stop() { kill -TERM "$@" 2>/dev/null || true; wait "$@" 2>/dev/null || true; }
rss_mib() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

# ---- 1. memory: two trackers, each told of every simulated peer
port=$(free_port 18800)
tracker a "$port"; pa=$TPID; porta=$port
port=$(free_port $((port + 1)))
tracker b "$port"; pb=$TPID; portb=$port
echo "two p2pshare trackers (pids $pa, $pb, core 0): $PEERS peers announcing to both, $SECS s"
gens=()
for t in a b; do
  if [ $t = a ]; then p=$porta pid=$pa; else p=$portb pid=$pb; fi
  taskset -c 1 "$BIN/examples/tracker_bench" --tracker p2pshare --addr "127.0.0.1:$p" \
    --pid "$pid" --peers "$PEERS" --secs "$SECS" --inflight "$INFLIGHT" > "$WORK/gen-$t.out" &
  gens+=($!)
  PIDS+=($!)
done
i=0
for g in "${gens[@]}"; do
  i=$((i + 1))
  wait "$g" || { echo "error: the load generator against tracker $i failed" >&2; exit 1; }
  t=$([ $i = 1 ] && echo a || echo b)
  sed -n 's/^tracker-bench tracker=p2pshare peers=\([0-9]*\) announces_per_s=\([0-9.]*\) .* rss_mib=\([0-9.]*\)$/tracker-cost memory trackers=2 tracker='"$i"' peers=\1 announces_per_s=\2 rss_mib=\3/p' "$WORK/gen-$t.out"
done
stop "$pa" "$pb"

# ---- 2. announce traffic of real peers, one tracker then two
# metric PORT NAME: a counter's value from a tracker's /metrics.
metric() {
  local page
  page=$(exec 3<>"/dev/tcp/127.0.0.1/$1"; printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3; cat <&3)
  printf '%s\n' "$page" | awk -v m="p2pshare_$2" '$1 == m {print $2}'
}
# listed_everywhere: every tracker of HPORTS lists COST_PEERS files.
listed_everywhere() {
  local hp
  for hp in "${HPORTS[@]}"; do
    [ "$(metric "$hp" tracker_files)" = "$COST_PEERS" ] || return 1
  done
}
traffic() {
  local n=$1 tports=() hports=() tpids=() peers=() args=()
  port=$(free_port $((port + 1)))
  for t in $(seq 1 "$n"); do
    port=$(free_port $((port + 1))); local tp=$port
    port=$(free_port $((port + 1))); local hp=$port
    tracker "traffic$n-$t" "$tp" --http "$hp"
    tports+=("$tp"); hports+=("$hp"); tpids+=("$TPID")
  done
  args=("127.0.0.1:${tports[0]}")
  [ "$n" -lt 2 ] || args+=(--tracker "127.0.0.1:${tports[1]}")
  for i in $(seq 1 "$COST_PEERS"); do
    mkdir -p "$WORK/traffic$n/P$i/files"
    echo "peer $i" > "$WORK/traffic$n/P$i/files/p$i.txt"
    port=$(free_port $((port + 1)))
    taskset -c 1 "$BIN/peer" "P$i" "$port" "${args[@]}" --dir "$WORK/traffic$n/P$i" --serve \
      > "$WORK/traffic$n-P$i.log" 2>&1 &
    peers+=($!)
    PIDS+=($!)
  done
  # Every peer registered and announced its file: the steady state.
  HPORTS=("${hports[@]}")
  wait_for 60 "$COST_PEERS peers on every tracker" listed_everywhere
  sleep 3
  local before=() after=()
  for hp in "${hports[@]}"; do before+=("$(metric "$hp" tracker_datagrams_total)"); done
  sleep "$SECS"
  for hp in "${hports[@]}"; do after+=("$(metric "$hp" tracker_datagrams_total)"); done
  local total=0 rss=0
  for t in $(seq 0 $((n - 1))); do
    total=$((total + ${after[$t]} - ${before[$t]}))
  done
  rss=$(rss_mib "${tpids[0]}")
  awk -v n="$n" -v p="$COST_PEERS" -v d="$total" -v s="$SECS" -v rss="$rss" 'BEGIN {
    printf "tracker-cost traffic trackers=%d peers=%d datagrams_per_s_per_tracker=%.2f datagrams_per_s_per_peer=%.3f tracker_rss_mib=%s\n",
      n, p, d / s / n, d / s / p, rss }'
  stop "${peers[@]}"
  stop "${tpids[@]}"
  peers=()
}
echo "$COST_PEERS real idle peers, $SECS s with one tracker, then with two"
traffic 1
traffic 2
