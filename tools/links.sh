# shellcheck shell=bash
# Delay and loss on make hosts' links (tools/swarm.sh with HOSTS=1 sources
# this). The kernel here has no netem, so:
# - delay: the switch namespace runs examples/linkrelay in place of the
#   bridge; it forwards frames between the hosts' veth ends and holds
#   each one for the distance between its two hosts;
# - loss: an nftables rule in each host's namespace drops the asked
#   fraction of the frames the host receives (numgen random, at the
#   ingress of its eth0, where every packet is one frame: TCP hands the
#   stack multi-segment GSO packets, which a rule on output would drop as
#   a burst), and counts them;
# - the hosts' TSO, GSO, GRO and checksum offloads are off, so a packet is
#   one frame on the wire (a frame the relay can send on, with a full
#   checksum).
# RTT=40ms: every host at the same distance; RTT=5ms-80ms: leechers spread
# evenly from 5 to 80 ms, the seeder and the tracker in the middle. Between
# two hosts the RTT is the mean of theirs (a frame is held a quarter of each).
# LOSS=0.1%: of the frames each host receives, so once per direction.

LINKS=0
LINK_LO_US=0
LINK_HI_US=0
LOSS_PPM=0
HOST_RTT_US=()
RELAY_PID=

# ms_to_us TEXT: "40ms", "40" or "0.5ms" as whole microseconds.
ms_to_us() {
  awk -v s="$1" 'BEGIN { sub(/ms$/, "", s); if (s !~ /^[0-9]+(\.[0-9]+)?$/) exit 1
    printf "%d", s * 1000 + 0.5 }'
}

# links_settings: reads RTT, LOSS and CHECK; LINKS=1 when any is set.
links_settings() {
  local rtt=${RTT:-} loss=${LOSS:-}
  [ -n "$rtt$loss${CHECK:-}" ] || return 0
  case "${CHECK:-}" in '' | links) ;; *) echo "error: CHECK takes 'links', got '$CHECK'" >&2; exit 2 ;; esac
  LINKS=1
  rtt=${rtt:-0}
  LINK_LO_US=$(ms_to_us "${rtt%%-*}") && LINK_HI_US=$(ms_to_us "${rtt#*-}") ||
    { echo "error: RTT is milliseconds, e.g. RTT=40ms, or a spread, e.g. RTT=5ms-80ms (got '$RTT')" >&2; exit 2; }
  if [ "$LINK_HI_US" -lt "$LINK_LO_US" ] || [ "$LINK_HI_US" -gt 10000000 ]; then
    echo "error: RTT=$RTT: the spread must go up, and 10 s at most" >&2
    exit 2
  fi
  LOSS_PPM=$(awk -v s="${loss:-0}" 'BEGIN { sub(/%$/, "", s); if (s !~ /^[0-9]+(\.[0-9]+)?$/ || s >= 100) exit 1
    printf "%d", s * 10000 + 0.5 }') ||
    { echo "error: LOSS is a percentage below 100, e.g. LOSS=0.1% (got '$LOSS')" >&2; exit 2; }
}

# need_tool COMMAND PACKAGE: installs PACKAGE with apt-get when COMMAND is
# missing (we are root here), else stops with the command to type.
need_tool() {
  command -v "$1" >/dev/null && return 0
  if command -v apt-get >/dev/null; then
    echo "make hosts: installing $2 (for $1)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null 2>&1; }
  fi
  command -v "$1" >/dev/null ||
    { echo "error: make hosts with RTT/LOSS needs '$1': apt-get install $2" >&2; exit 1; }
}

links_tools() {
  [ "$LINKS" = 1 ] || return 0
  need_tool ethtool ethtool
  need_tool chrt util-linux
  need_tool taskset util-linux
  links_cpus
  [ "$LOSS_PPM" -eq 0 ] || need_tool nft nftables
  [ "${CHECK:-}" != links ] || need_tool ping iputils-ping
}

# links_rtts HOSTS: each host's RTT in HOST_RTT_US (host 0 the tracker, 1
# the seeder, then the leechers), spread evenly over the peers.
links_rtts() {
  local hosts=$1 m k j=0 mid
  m=$((hosts - 1))
  mid=$(((m - 1) / 2))
  HOST_RTT_US=()
  for k in $(seq 0 $((m - 1))); do
    local v=$((LINK_LO_US + (m > 1 ? (LINK_HI_US - LINK_LO_US) * k / (m - 1) : 0)))
    if [ "$k" -eq "$mid" ]; then
      HOST_RTT_US[0]=$v
      HOST_RTT_US[1]=$v
    else
      HOST_RTT_US[2 + j]=$v
      j=$((j + 1))
    fi
  done
}

# The relay's CPU and the others. The relay's every send runs the
# receiving host's network stack (TCP receive, its ACKs) right away in the
# relay's thread; that is the host's work, and in one thread it would make
# the wire a single core. So the relay keeps CPU 0 and the hosts' receive
# path goes to the other CPUs (RPS on each host's eth0): the relay only
# forwards. One CPU: nothing to split.
RELAY_CPU_LIST=
HOST_RPS_MASK=
links_cpus() {
  local n
  n=$(nproc)
  [ "$n" -gt 1 ] || return 0
  RELAY_CPU_LIST=0
  HOST_RPS_MASK=$(printf '%x' $(( (1 << (n > 32 ? 32 : n)) - 2 )))
}

# links_host NS: one host's side: offloads off, receive on the non-relay
# CPUs, the loss rule.
links_host() {
  ip netns exec "$1" ethtool -K eth0 tx off tso off gso off gro off >/dev/null 2>&1 ||
    { echo "error: ethtool could not turn the offloads off on $1's eth0" >&2; exit 1; }
  [ -z "$HOST_RPS_MASK" ] ||
    ip netns exec "$1" sh -c "echo $HOST_RPS_MASK > /sys/class/net/eth0/queues/rx-0/rps_cpus" ||
    { echo "error: could not steer $1's receive path (RPS) off the relay's CPU" >&2; exit 1; }
  [ "$LOSS_PPM" -gt 0 ] || return 0
  ip netns exec "$1" nft -f - <<EOF || { echo "error: nft could not add the loss rule in $1" >&2; exit 1; }
table netdev p2ploss {
  chain in {
    type filter hook ingress device "eth0" priority 0; policy accept;
    counter numgen random mod 1000000 < $LOSS_PPM counter drop
  }
}
EOF
}

# links_relay SWITCH_NS HOSTS QUEUE_BYTES: starts the relay on p0..p(HOSTS-1),
# under SCHED_FIFO, above RT=1's peers: it is the wire, and should not wait
# behind the hosts.
links_relay() {
  local ports=() h
  for h in $(seq 0 $(($2 - 1))); do ports+=("p$h=${HOST_RTT_US[$h]}"); done
  local pin=()
  [ -z "$RELAY_CPU_LIST" ] || pin=(taskset -c "$RELAY_CPU_LIST")
  ip netns exec "$1" "${pin[@]}" chrt -f 20 "$BIN/examples/linkrelay" --queue-bytes "$3" "${ports[@]}" > "$WORK/relay.log" 2>&1 &
  RELAY_PID=$!
  PIDS+=("$RELAY_PID")
  wait_for 10 "the link relay" grep -q '^linkrelay ports=' "$WORK/relay.log" ||
    { cat "$WORK/relay.log" >&2; exit 1; }
}

# links_say: what was applied, host by host when the RTTs differ.
links_say() {
  [ "$LINKS" = 1 ] || return 0
  awk -v lo="$LINK_LO_US" -v hi="$LINK_HI_US" -v ppm="$LOSS_PPM" 'BEGIN {
    if (lo == hi) printf "links: RTT %.1f ms between any two hosts", lo / 1000
    else printf "links: RTT spread %.1f-%.1f ms over the hosts (between two hosts, the mean of theirs)", lo / 1000, hi / 1000
    if (ppm > 0) printf "; loss %.4g%% of the frames each host receives (nft)", ppm / 10000
    printf "; switch examples/linkrelay (offloads off)\n" }'
  [ "$LINK_LO_US" = "$LINK_HI_US" ] && return 0
  local h label
  for h in "${!HOST_RTT_US[@]}"; do
    case $h in 0) label=tracker ;; 1) label=S ;; *) label="L$((h - 1))" ;; esac
    printf '  host %-3s %-8s RTT %6.1f ms\n' "$h" "$label" "$(awk -v u="${HOST_RTT_US[$h]}" 'BEGIN {print u / 1000}')"
  done
}

# links_rtt_of HOST: "   (RTT x ms)" when the RTTs are spread, else nothing.
links_rtt_of() {
  [ "$LINKS" = 1 ] && [ "$LINK_LO_US" != "$LINK_HI_US" ] || return 0
  awk -v u="${HOST_RTT_US[$1]}" 'BEGIN {printf "   (RTT %.1f ms)", u / 1000}'
}

# links_loss: "SENT DROPPED" packets over every host's loss rule.
links_loss() {
  local ns
  for ns in "${HOST_NS[@]}"; do
    ip netns exec "$ns" nft list chain netdev p2ploss in 2>/dev/null |
      sed -n 's/.*counter packets \([0-9]*\) .*counter packets \([0-9]*\) .*/\1 \2/p'
  done | awk '{s += $1; d += $2} END {print s + 0, d + 0}'
}

# links_counters: the relay's counters now (it prints them on SIGUSR1).
links_counters() {
  local before
  before=$(grep -c '^linkrelay frames=' "$WORK/relay.log" || true)
  kill -USR1 "$RELAY_PID"
  wait_for 5 "the relay's counters" test "$(grep -c '^linkrelay frames=' "$WORK/relay.log")" -gt "$before"
  grep '^linkrelay frames=' "$WORK/relay.log" | tail -1
}

# links_report: loss counted and the relay's figures, after a run.
links_report() {
  [ "$LINKS" = 1 ] || return 0
  local loss relay
  read -r LOSS_SENT LOSS_DROPPED <<<"$(links_loss)"
  relay=$(links_counters)
  # shellcheck disable=SC2034 # read by swarm.sh
  RELAY_CPU=$(peers_cpu "$RELAY_PID")
  awk -v s="$LOSS_SENT" -v d="$LOSS_DROPPED" -v ppm="$LOSS_PPM" 'BEGIN {
    if (ppm > 0) printf "%-36s %9.4f %%   asked %.4g %%: %d of %d packets\n", "loss counted (nft, all hosts)", 100 * d / s, ppm / 10000, d, s }'
  echo "relay: ${relay#linkrelay }"
  field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$relay"; }
  if [ "$(field dropped_full)" != 0 ] || [ "$(field dropped_kernel)" != 0 ] || [ "$(field oversize)" != 0 ]; then
    echo "note: the relay dropped frames besides the loss asked (see dropped_*/oversize above)"
  fi
}

# The streams run under `timeout`: a check killed halfway must not leave
# a sink waiting for a connection for ever.
# links_check: CHECK=links, in place of the swarm: ping from the seeder's
# host to every leecher's, one TCP stream L1 -> S (tbf caps L1's upload),
# and the loss nft counted meanwhile.
links_check() {
  local h out want ping1 port=7000 secs=8
  echo "check: ping from S's host to each leecher's (20 pings, after one for ARP)"
  for h in $(seq 2 $((${#HOST_NS[@]} - 1))); do
    ip netns exec "${HOST_NS[1]}" ping -c 1 -W 2 "${HOST_IP[$h]}" >/dev/null 2>&1 || true
    out=$(ip netns exec "${HOST_NS[1]}" ping -q -c 20 -i 0.02 -W 2 "${HOST_IP[$h]}" | sed -n 's/^rtt [^=]*= \([^,]*\).*/\1/p')
    want=$(awk -v a="${HOST_RTT_US[1]}" -v b="${HOST_RTT_US[$h]}" 'BEGIN {printf "%.1f", (a + b) / 2000}')
    printf '  S -> L%-3s asked %6s ms   min/avg/max/mdev %s\n' "$((h - 1))" "$want" "${out:-(no reply)}"
    [ "$h" != 2 ] || ping1=$(cut -d/ -f2 <<<"$out")
  done
  echo "check: one TCP stream L1 -> S for $secs s (examples/tcpstream)"
  ip netns exec "${HOST_NS[1]}" timeout 60 "$BIN/examples/tcpstream" sink "$port" > "$WORK/sink.log" 2>&1 &
  PIDS+=($!)
  wait_for 5 "the stream's sink" bash -c "ip netns exec ${HOST_NS[1]} ss -Hltn 'sport = :$port' | grep -q ."
  ip netns exec "${HOST_NS[2]}" timeout 60 "$BIN/examples/tcpstream" send "${HOST_IP[1]}:$port" "$secs"
  wait_for 30 "the stream's end" grep -q '^tcpstream ' "$WORK/sink.log"
  out=$(cat "$WORK/sink.log")
  read -r LOSS_SENT LOSS_DROPPED <<<"$(links_loss)"
  awk -v u="$U" -v out="$out" -v s="$LOSS_SENT" -v d="$LOSS_DROPPED" -v ppm="$LOSS_PPM" \
      -v lo="$LINK_LO_US" -v hi="$LINK_HI_US" -v ping1="${ping1:-0}" 'BEGIN {
    split(out, f, /[ =]/); for (i = 1; i < length(f); i++) v[f[i]] = f[i + 1]
    # tbf counts whole frames: 1448 payload bytes in each 1514 on the wire.
    cap = u * 1448 / 1514 / 1048576
    printf "  carried %.2f MiB/s after slow start (%.2f overall); the cap leaves %.2f MiB/s of payload: %.0f %%\n", \
      v["steady_MiBps"], v["MiBps"], cap, 100 * v["steady_MiBps"] / cap
    p = ppm / 1e6; sd = sqrt(s * p * (1 - p))
    if (ppm > 0) printf "check: loss counted by nft on every host: %d of %d packets, %.4f %% (asked %.4g %%, expected %.0f +- %.0f)\n", \
      d, s, (s > 0) ? 100 * d / s : 0, 100 * p, s * p, 2 * sd
    printf "links-check rtt_ms=%.1f ping_avg_ms=%.2f tcp_MiBps=%.2f cap_MiBps=%.2f loss_pct=%.4f lost_pct=%.4f packets=%d\n", \
      (lo + hi) / 2000, ping1, v["steady_MiBps"], cap, 100 * p, (s > 0) ? 100 * d / s : 0, s }'
  links_ring "$secs"
  echo "relay: $(links_counters | sed 's/^linkrelay //')"
}

# links_ring SECS: every peer host sends one stream to the one before it
# (L1 -> S, L2 -> L1, ..., S -> LN), all at once: every uplink full, the
# most the swarm can ask of the switch. Prints each stream's steady rate.
links_ring() {
  local secs=$1 hosts=$((${#HOST_NS[@]} - 1)) h to port=7001 cpu0 cpu1
  echo "check: every uplink at once, a ring of $hosts streams (host h -> h-1) for $secs s"
  for h in $(seq 1 "$hosts"); do
    ip netns exec "${HOST_NS[$h]}" timeout 60 "$BIN/examples/tcpstream" sink "$port" > "$WORK/ring$h.log" 2>&1 &
    PIDS+=($!)
  done
  for h in $(seq 1 "$hosts"); do
    wait_for 5 "a ring sink" bash -c "ip netns exec ${HOST_NS[$h]} ss -Hltn 'sport = :$port' | grep -q ."
  done
  cpu0=$(peers_cpu "$RELAY_PID")
  local senders=()
  for h in $(seq 1 "$hosts"); do
    to=$((h == 1 ? hosts : h - 1))
    ip netns exec "${HOST_NS[$h]}" timeout 60 "$BIN/examples/tcpstream" send "${HOST_IP[$to]}:$port" "$secs" &
    senders+=($!)
  done
  wait "${senders[@]}" || true
  for h in $(seq 1 "$hosts"); do wait_for 30 "a ring stream's end" grep -q '^tcpstream ' "$WORK/ring$h.log"; done
  cpu1=$(peers_cpu "$RELAY_PID")
  cat "$WORK"/ring*.log | sed -n 's/.* steady_MiBps=\([0-9.]*\).*/\1/p' |
    awk -v u="$U" -v n="$hosts" -v cpu="$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN {print b - a}')" -v secs="$secs" '
    { s += $1; if (min == "" || $1 < min) min = $1 }
    END { cap = u * 1448 / 1514 / 1048576
      printf "  %d streams: slowest %.2f MiB/s, mean %.2f, of %.2f the cap leaves; %.1f MiB/s through the switch\n", NR, min, s / NR, cap, s
      printf "  relay CPU meanwhile: %.2f s in %d s (%.0f %% of a core)\n", cpu, secs, 100 * cpu / secs
      printf "links-ring streams=%d min_MiBps=%.2f mean_MiBps=%.2f cap_MiBps=%.2f relay_cpu_pct=%.0f\n", NR, min, s / NR, cap, 100 * cpu / secs }'
}
