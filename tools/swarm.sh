#!/usr/bin/env bash
# make swarm: one seeder and N leechers, every upload capped at LIMIT, all
# leechers started together; prints each leecher's completion time, the
# swarm's, the lower bound T* = max(F/u_s, N*F/(u_s + N*u)), the
# client-server time N*F/u_s and the ratio to T*; the leechers' times as
# p50, p99 and max over T* (nearest rank), and the CPU seconds all peer
# processes used (whole lives, the seeder's publishing included) per GiB
# delivered to the leechers; with HOSTS=1 also how full the uplinks were
# over the swarm time (the seeder's, and all peers' together: with
# distance, unfilled uplinks say the peers ask for too little at a time).
# Every copy is verified.
#
#   N=8 SIZE=128M LIMIT=10M tools/swarm.sh      loopback, caps by --upload-limit
#   HOSTS=1 N=8 SIZE=128M LIMIT=10M tools/swarm.sh
#                                               every peer and the tracker in its
#                                               own network namespace (needs root)
#
# HOSTS=1 gives each process its own network stack and address in
# 10.213.0.0/24, wired by veth pairs to a bridge in one more namespace; the
# upload cap is a `tc ... tbf` on each host's interface, the way a real
# uplink caps a host, so peers run without --upload-limit there (with both,
# two limiters would each take their share and the cap would be neither).
# Everything is created for the run and removed afterwards, also on Ctrl-C
# or SIGTERM; what a run killed with SIGKILL left goes at the next one
# (tools/lib.sh, work_dir).
# With HOSTS=1, RTT=40ms (or a spread, RTT=5ms-80ms) and LOSS=0.1% shape
# every host's link (tools/links.sh: a user-space switch in place of the
# bridge, nftables for loss), and CHECK=links checks those links (ping,
# one TCP stream, loss counted) instead of running the swarm.
# KEEP=1 keeps the work directory (logs) and prints where it is. RT=1
# (root): the whole run under SCHED_FIFO, so a shared machine's other load
# does not starve the peers (tools/lib.sh, realtime).
# `tools/swarm.sh --check` only checks the settings (and root for HOSTS=1).
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib.sh
. tools/links.sh
realtime "$@"

N=${N:-8}
SIZE=${SIZE:-128M}
LIMIT=${LIMIT:-10M}
HOSTS=${HOSTS:-0}
KEEP=${KEEP:-0}
NAME=swarm.bin

whole N 1 200
# The swarm's target: within 1.15 x T* for a few leechers,
# 1.30 from a few dozen on.
if [ "$N" -le 8 ]; then TARGET=1.15; else TARGET=1.30; fi
F=$(size_bytes "$SIZE") || exit 2
U=$(size_bytes "$LIMIT") || exit 2
if [ "$F" -lt 1 ] || [ "$U" -lt 1024 ]; then
  echo "error: SIZE must be above 0 and LIMIT at least 1K (got SIZE=$SIZE LIMIT=$LIMIT)" >&2
  exit 2
fi
if [ "$HOSTS" = 1 ]; then
  need_netns "make hosts"
  links_settings
  links_tools
elif [ -n "${RTT:-}${LOSS:-}${CHECK:-}" ]; then
  # make calibrate passes RTT on to the simulator; loopback has no link to shape.
  echo "note: RTT, LOSS and CHECK shape make hosts' links only; make swarm runs on loopback as it is"
fi
[ "${1:-}" != --check ] || exit 0
for b in peer tracker; do
  [ -x "$BIN/$b" ] || { echo "error: $BIN/$b is missing: run 'make build' (or make swarm, which builds)" >&2; exit 1; }
done
[ "$LINKS" = 0 ] || need_bins examples/linkrelay examples/tcpstream
# With distance and loss: within 1.25 x T* at N=8.
[ "$LINKS" = 0 ] || [ "$N" -gt 8 ] || TARGET=1.25

# peers_cpu PID...: the CPU seconds (utime + stime) those processes used.
# Field 2 of /proc/PID/stat, the name in parentheses, is skipped whole.
peers_cpu() {
  local pid tck
  tck=$(getconf CLK_TCK)
  for pid in "$@"; do sed 's/^.*) //' "/proc/$pid/stat"; done |
    awk -v tck="$tck" '{s += $12 + $13} END {printf "%.2f", s / tck}'
}

work_dir swarm

# ---- where each process runs: host 0 is the tracker, 1 the seeder, 1+i leecher i
HOST_IP=()
HOST_NS=()
if [ "$HOSTS" = 1 ]; then
  sw="p2ps$$-sw"
  # With shaped links the relay is the switch, in place of the bridge.
  if [ "$LINKS" = 0 ]; then netns_switch "$sw"; else netns_new "$sw"; fi
  links_rtts $((N + 2))
  for h in $(seq 0 $((N + 1))); do
    ns="p2ps$$-h$h"
    netns_host "$ns" "$sw" "p$h" "10.213.0.$((h + 1))/24" $((1 - LINKS))
    [ "$LINKS" = 0 ] || links_host "$ns"
    # The host's uplink: what leaves eth0 is its upload.
    tbf_cap "$ns" eth0 "$U"
    HOST_NS+=("$ns")
    HOST_IP+=("10.213.0.$((h + 1))")
  done
  where="network namespaces, 10.213.0.0/24, upload capped by tc tbf on each host's interface"
  if [ "$LINKS" = 1 ]; then
    # Held at once at most: what every uplink sends in the longest one-way
    # delay and 100 ms more (the relay falling behind for a while), 4 MiB
    # at least; a frame beyond it is dropped and counted (dropped_full).
    queue=$(( (N + 2) * U * (LINK_HI_US / 2 + 100000) / 1000000 ))
    links_relay "$sw" $((N + 2)) $(( queue > 4194304 ? queue : 4194304 ))
  fi
else
  for h in $(seq 0 $((N + 1))); do HOST_NS+=(""); HOST_IP+=(127.0.0.1); done
  where="loopback, upload capped by --upload-limit"
fi

# on HOST: sets ON to the prefix that runs a command on that host. A prefix,
# not a function, so `"${ON[@]}" cmd &` leaves cmd's own pid in $! (ip netns
# exec execs the command in place).
on() {
  ON=()
  [ -z "${HOST_NS[$1]}" ] || ON=(ip netns exec "${HOST_NS[$1]}")
}

# Every host's server port, chosen before anything starts: in a namespace a
# host has every port to itself; on loopback they are free, distinct ports
# from a random base, so two runs at once do not collide, and below the
# kernel's ephemeral range (32768 up), where the peers' own UDP sockets to
# the tracker land and `free_port`'s TCP probe cannot see them.
PORT=()
p=$((10000 + RANDOM % 20000))
for h in $(seq 0 $((N + 1))); do
  if [ -n "${HOST_NS[$h]}" ]; then
    PORT+=($((h == 0 ? 8000 : 9000)))
  else
    p=$(free_port $((p + 1)))
    PORT+=("$p")
  fi
done

# Limits passed to the peers: none in namespaces, where tc is the cap.
peer_limit=()
[ "$HOSTS" = 1 ] || peer_limit=(--upload-limit "$LIMIT")

echo "swarm: 1 seeder + $N leechers, $SIZE file ($F bytes), every upload $LIMIT/s ($U B/s); $where"
links_say
if [ "${CHECK:-}" = links ]; then
  links_check
  exit 0
fi

# ---- tracker and seeder
tport=${PORT[0]}
taddr="${HOST_IP[0]}:$tport"
on 0
"${ON[@]}" "$BIN/tracker" --port "$tport" --bind "${HOST_IP[0]}" --data "$WORK/tracker" > "$WORK/tracker.log" 2>&1 &
PIDS+=($!)
on 1
AT=("${ON[@]}")
wait_for 10 "the tracker" "${AT[@]}" bash -c "exec 3<>/dev/tcp/${HOST_IP[0]}/$tport"

tools/mkfile "$WORK/S/files/$NAME" "$SIZE"
want=$(md5_of "$WORK/S/files/$NAME")
"${ON[@]}" "$BIN/peer" S "${PORT[1]}" "$taddr" --dir "$WORK/S" --serve "${peer_limit[@]}" \
  > >(stamp > "$WORK/S.log") 2>&1 &
seeder=$!
PIDS+=("$seeder")
wait_for 120 "the seeder to register $NAME" holds "$taddr" "$NAME" S

# In namespaces, the seeder's interface counts every byte it sent (headers
# included); loopback has no per-process counter, so there the figure is
# the blocks the leechers report having taken from S (their `from S` lines).
seeder_tx() {
  if [ "$HOSTS" = 1 ]; then ip netns exec "${HOST_NS[1]}" cat /sys/class/net/eth0/statistics/tx_bytes; else echo 0; fi
}
tx0=$(seeder_tx)
# Every peer host's interface, summed: how full the uplinks were.
peers_tx() {
  local h
  if [ "$HOSTS" = 1 ]; then
    for h in $(seq 1 $((N + 1))); do ip netns exec "${HOST_NS[$h]}" cat /sys/class/net/eth0/statistics/tx_bytes; done |
      awk '{s += $1} END {print s + 0}'
  else echo 0; fi
}
all0=$(peers_tx)

# ---- the leechers, all at once
t0=$EPOCHREALTIME
LEECH=()
for i in $(seq 1 "$N"); do
  on $((i + 1))
  "${ON[@]}" "$BIN/peer" "L$i" "${PORT[$((i + 1))]}" "$taddr" --dir "$WORK/L$i" \
    --serve --get "$NAME" "${peer_limit[@]}" > >(stamp > "$WORK/L$i.log") 2>&1 &
  PIDS+=($!)
  LEECH+=($!)
done

cs=$(awk -v n="$N" -v f="$F" -v u="$U" 'BEGIN {printf "%.3f", n * f / u}')
allowed=$(awk -v cs="$cs" 'BEGIN {printf "%d", 30 + 1.5 * cs}')
said_done() { printf 'L%-3s done after %8.3f s%s\n' "$1" "${TOOK[$1]}" "$(links_rtt_of $(($1 + 1)))"; }
wait_leechers "$WORK" "$t0" "$allowed" "" \
  "the swarm did not finish within $allowed s of the start (1.5 x the client-server time + 30 s)" said_done
tx=$(( $(seeder_tx) - tx0 ))
all_tx=$(( $(peers_tx) - all0 ))
# CPU seconds every peer process used so far (user + system, from
# /proc/PID/stat; the leechers still serve, but the swarm is over), read
# before anything is stopped.
cpu=$(peers_cpu "$seeder" "${LEECH[@]}")
from_s=$(cat "$WORK"/L*.log | sed -n 's/^[0-9.]* from S blocks=\([0-9]*\) .*/\1/p' | awk '{s += $1} END {print s + 0}')

for i in $(seq 1 "$N"); do
  got=$(md5_of "$WORK/L$i/files/$NAME")
  if [ "$got" != "$want" ]; then
    echo "error: L$i has a corrupt copy (md5 $got, the seeder's is $want)" >&2
    exit 1
  fi
done

# ---- the figures
links_report
# Fields for the last line when the links were shaped (added at its end).
extra=
if [ "$LINKS" = 1 ]; then
  extra=$(awk -v lo="$LINK_LO_US" -v hi="$LINK_HI_US" -v ppm="$LOSS_PPM" -v s="$LOSS_SENT" -v d="$LOSS_DROPPED" \
    -v relay="$RELAY_CPU" 'BEGIN {
    rtt = (lo == hi) ? sprintf("%g", lo / 1000) : sprintf("%g-%g", lo / 1000, hi / 1000)
    printf " rtt_ms=%s loss_pct=%g lost_pct=%.4f relay_cpu_s=%.2f", rtt, ppm / 10000, (s > 0) ? 100 * d / s : 0, relay }')
fi
secs=$(slowest)
times=$(printf '%s\n' "${TOOK[@]}" | sort -g | tr '\n' ' ')
awk -v n="$N" -v f="$F" -v us="$U" -v u="$U" -v secs="$secs" -v cs="$cs" -v fromS="$from_s" -v tx="$tx" -v alltx="$all_tx" \
  -v target="$TARGET" -v hosts="$HOSTS" -v size="$SIZE" -v want="$want" -v times="$times" -v cpu="$cpu" -v extra="$extra" '
# The nearest-rank percentile P of the n sorted times t[1..n].
function pct(p,   k) { k = int(p * n + 0.999999); if (k < 1) k = 1; return t[k] }
BEGIN {
  a = f / us; b = n * f / (us + n * u); tstar = (a > b) ? a : b
  ratio = secs / tstar
  split(times, t, " ")
  p50 = pct(0.50) / tstar; p99 = pct(0.99) / tstar; pmax = t[n] / tstar
  gib = n * f / 1073741824
  cpu_gib = cpu / gib
  printf "all %d copies verified (md5 %s)\n", n, want
  printf "%-36s %9.3f s\n", "swarm time (the last leecher)", secs
  printf "%-36s %9.3f s   max(F/u_s, N*F/(u_s+N*u))\n", "lower bound T*", tstar
  printf "%-36s %9.3f s   N*F/u_s\n", "client-server time", cs
  printf "%-36s %9.3f     target <= %.2f: %s\n", "swarm / T*", ratio, target, (ratio <= target) ? "met" : "missed"
  printf "%-36s %9.1f MiB (%.2f copies of the file)\n", "leechers took from the seeder", fromS * 4096 / 1048576, fromS * 4096 / f
  if (hosts) printf "%-36s %9.1f MiB (%.2f copies, headers included; its uplink %.0f %% used)\n", "seeder interface sent", tx / 1048576, tx / f, 100 * tx / (secs * u)
  # Over the swarm time, of what N+1 uplinks at LIMIT could have sent.
  if (hosts) printf "%-36s %9.1f %%   (%.1f MiB sent by the %d peers)\n", "uplinks used", 100 * alltx / (secs * (n + 1) * u), alltx / 1048576, n + 1
  printf "%-36s p50 %.3f  p99 %.3f  max %.3f   (nearest rank, %d leechers)\n", "leecher times / T*", p50, p99, pmax, n
  printf "%-36s %9.2f s   %.2f s per GiB delivered (%.2f GiB)\n", "CPU of all peers (user + system)", cpu, cpu_gib, gib
  printf "swarm N=%d size=%d limit=%d hosts=%d secs=%.3f tstar=%.3f ratio=%.3f clientserver=%.3f seeder_copies=%.2f p50_ratio=%.3f p99_ratio=%.3f max_ratio=%.3f cpu_s=%.2f cpu_s_per_gib=%.2f%s%s\n", \
    n, f, us, hosts, secs, tstar, ratio, cs, fromS * 4096 / f, p50, p99, pmax, cpu, cpu_gib, \
    hosts ? sprintf(" uplink_use=%.3f", alltx / (secs * (n + 1) * u)) : "", extra
}'
