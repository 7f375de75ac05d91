# shellcheck shell=bash
# Shared by the scripts in tools/: sizes, ports, the work directory and its
# teardown, process cleanup, waiting, network namespaces, the leechers.
# Sourcing it installs no trap; `work_dir` does (see there).

# Where Cargo put the release binaries (make passes BIN): target/release,
# or under CARGO_TARGET_DIR or a build.target-dir setting, as cargo
# metadata says.
cargo_bin_dir() {
  local dir
  dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p') || true
  echo "${dir:-${CARGO_TARGET_DIR:-target}}/release"
}
BIN=${BIN:-$(cargo_bin_dir)}

# need_bins NAME...: stops with an error line when a binary is missing,
# rather than timing out later waiting for it to answer.
need_bins() {
  local b
  for b in "$@"; do
    [ -x "$BIN/$b" ] || { echo "error: $BIN/$b is missing: run 'make build' (the make targets build first)" >&2; exit 1; }
  done
}

# realtime ARGS...: with RT=1 (root only), runs the calling script (one in
# tools/, called from the repository root) again,
# whole, under SCHED_FIFO (chrt -f 10), so the other load of a shared
# machine does not decide a benchmark's figures; nice cannot do that
# across sessions (autogroup). Call it before anything else.
realtime() {
  [ "${RT:-0}" = 1 ] && [ -z "${BENCH_RT_ON:-}" ] || return 0
  command -v chrt >/dev/null && [ "$(id -u)" -eq 0 ] ||
    { echo "error: RT=1 needs root and chrt (util-linux)" >&2; exit 1; }
  # The callers have cd'd to the repository root: a relative $0 would
  # no longer name the script.
  BENCH_RT_ON=1 exec chrt -f 10 "tools/$(basename "$0")" "$@"
}
# Timestamps from $EPOCHREALTIME need a '.' as the decimal point.
export LC_ALL=C

# whole VAR [MIN MAX]: exits 2 with an `error:` line unless the variable
# named VAR holds a whole number (from MIN to MAX, when they are given).
whole() {
  local v=${!1}
  case "$v" in '' | *[!0-9]*) echo "error: $1 must be a whole number, got '$v'" >&2; exit 2 ;; esac
  if [ $# -ge 3 ] && { [ "$v" -lt "$2" ] || [ "$v" -gt "$3" ]; }; then
    echo "error: $1 must be from $2 to $3, got $v" >&2
    exit 2
  fi
}

# size_bytes SIZE: 4096, 500K, 64M, 1G (binary multiples; a trailing B or
# iB is allowed) as a number of bytes; fails with an error line otherwise.
size_bytes() {
  local s=${1%iB} mult=1
  s=${s%B}
  case "$s" in
    *[Kk]) mult=1024 ;;
    *[Mm]) mult=$((1024 * 1024)) ;;
    *[Gg]) mult=$((1024 * 1024 * 1024)) ;;
  esac
  [ "$mult" -eq 1 ] || s=${s%?}
  case "$s" in
    ''|*[!0-9]*)
      echo "error: cannot read size '$1': use a whole number with an optional K, M or G suffix, e.g. 500K or 10M" >&2
      return 1 ;;
  esac
  echo $(( 10#$s * mult ))
}

# A port number, starting from $1, that no TCP or UDP socket of this
# machine uses: trackers and peers bind both protocols on one number, and
# a busy machine's UDP clients hold ephemeral ports in this range (a
# tracker that cannot bind its UDP port exits, and the script waited
# for it in vain).
free_port() {
  local p=$1
  while port_used "$p"; do p=$((p + 1)); done
  echo "$p"
}

port_used() {
  grep -qs ":$(printf %04X "$1") " /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6 ||
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The processes the script started; `cleanup` stops them (SIGTERM, then
# SIGKILL for any still there after 10 s: a teardown must end) and waits.
PIDS=()
cleanup() {
  local pid left tries=50
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  while [ "$tries" -gt 0 ]; do
    left=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && { left=1; break; }; done
    [ "$left" = 1 ] || break
    sleep 0.2
    tries=$((tries - 1))
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}

# in_background CMD...: runs CMD as one of PIDS and waits for it, returning
# its status. bash runs a trap only between foreground commands or during
# `wait`: a signal then ends the run at once, not when CMD is over. (Its
# stdin is /dev/null, as for any command run with &.)
in_background() {
  local pid rc=0
  "$@" &
  pid=$!
  PIDS+=("$pid")
  wait "$pid" || rc=$?
  return "$rc"
}

# ---- the work directory and the teardown
# work_dir NAME: makes WORK, this run's directory under TMPDIR, and the
# teardown that ends every run, however it ends (done, failed, Ctrl-C,
# SIGTERM, SIGHUP): it stops the processes in PIDS, removes the namespaces
# in NETNS and the work directory (some hold gigabytes), or with KEEP=1
# keeps it and says where. A script with more to stop defines
# `teardown_hook`, run first. A run killed with SIGKILL can do none of
# this: the directory's name carries the script's pid, and the next run
# removes what a gone run left (`sweep_gone`).
KEEP=${KEEP:-0}
work_dir() {
  sweep_gone
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/p2pshare-$1.$$.XXXXXX")
  trap teardown EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
}

teardown() {
  local ns
  # A second Ctrl-C must not cut the teardown short.
  trap '' INT TERM HUP
  if declare -F teardown_hook >/dev/null; then teardown_hook || true; fi
  cleanup
  for ns in "${NETNS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  if [ -z "${WORK:-}" ] || [ ! -d "$WORK" ]; then return 0; fi
  if [ "$KEEP" = 1 ]; then
    touch "$WORK/.kept"
    echo "logs kept in $WORK"
  else
    rm -rf "$WORK"
  fi
}

# sweep_gone: what runs killed with SIGKILL left: their work directories
# (not those kept with KEEP=1), the processes still using them, and their
# namespaces with whatever runs inside. A run is gone when no process has
# the pid in its names.
sweep_gone() {
  local d base pid ns pids
  for d in "${TMPDIR:-/tmp}"/p2pshare-*.*.*; do
    if [ ! -d "$d" ] || [ -e "$d/.kept" ]; then continue; fi
    base=${d##*/}
    pid=${base#*.}
    pid=${pid%%.*}
    case "$pid" in '' | *[!0-9]*) continue ;; esac
    ! kill -0 "$pid" 2>/dev/null || continue
    mapfile -t pids < <(pids_using "$d")
    stop_pids "${pids[@]}"
    rm -rf "$d"
  done
  command -v ip >/dev/null && [ "$(id -u)" -eq 0 ] || return 0
  for ns in $(ip netns list 2>/dev/null | sed -n 's/^\(p2p[st][0-9]*-[a-z0-9]*\).*/\1/p'); do
    pid=${ns#p2p?}
    pid=${pid%%-*}
    ! kill -0 "$pid" 2>/dev/null || continue
    mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null)
    stop_pids "${pids[@]}"
    ip netns del "$ns" 2>/dev/null || true
  done
}

# pids_using DIR: the processes whose command line names DIR, or that have
# a file under it open (a log their output goes to).
pids_using() {
  local p
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" != "$$" ] || continue
    if grep -qsF -- "$1" "$p/cmdline" ||
      find "$p/fd" -maxdepth 1 -lname "$1/*" 2>/dev/null | grep -q .; then
      echo "${p#/proc/}"
    fi
  done
}

# stop_pids PID...: SIGTERM, and SIGKILL for what is left a second later.
stop_pids() {
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  sleep 1
  kill -KILL "$@" 2>/dev/null || true
}

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND until it succeeds.
wait_for() {
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "error: timed out waiting for $what" >&2; return 1; fi
    sleep 0.2
  done
}

# Commands that reach the swarm run through "${AT[@]}": empty on loopback,
# `ip netns exec NS` when the swarm lives in network namespaces.
AT=()

# holds TRACKER FILE PEER_ID: true when the tracker lists PEER_ID as a holder.
holds() {
  printf 'whohas %s\n' "$2" |
    "${AT[@]}" "$BIN/peer" probe$$ "$(free_port 29000)" "$1" --dir "$WORK/probe" 2>/dev/null |
    grep -q "^$3 "
}

# stamp: copies stdin to stdout, each line prefixed with the wall-clock time
# it arrived (seconds, microsecond resolution); builtins only, no fork per line.
stamp() {
  local line
  while IFS= read -r line || [ -n "$line" ]; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done
}

md5_of() { md5sum "$1" | cut -d' ' -f1; }

# ---- network namespaces (root; make hosts, make sites)
# A run's namespaces are named p2p<s|t><its pid>-<name>, so that
# `sweep_gone` can tell those of a run that is gone.
NETNS=()

# need_netns TARGET: stops with an `error:` line unless this runs as root
# with ip and tc.
need_netns() {
  local tool
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: $1 needs root (network namespaces, tc): run it with sudo" >&2
    exit 1
  fi
  for tool in ip tc; do
    command -v "$tool" >/dev/null ||
      { echo "error: $1 needs '$tool' (package iproute2): install it and retry" >&2; exit 1; }
  done
}

# netns_new NS: a namespace, removed by the teardown.
netns_new() {
  ip netns add "$1"
  NETNS+=("$1")
}

# netns_switch NS: a namespace holding the bridge br0, up.
netns_switch() {
  netns_new "$1"
  ip -n "$1" link add br0 type bridge
  ip -n "$1" link set br0 up
}

# netns_host NS SWITCH PORT ADDR/PREFIX [bridged]: a host: namespace NS
# whose eth0 is joined by a veth pair to PORT in SWITCH (on its bridge br0
# unless the 5th argument is 0), with loopback, the address and eth0 up.
netns_host() {
  netns_new "$1"
  ip link add eth0 netns "$1" type veth peer name "$3" netns "$2"
  if [ "${5:-1}" = 0 ]; then ip -n "$2" link set "$3" up; else ip -n "$2" link set "$3" master br0 up; fi
  ip -n "$1" link set lo up
  ip -n "$1" addr add "$4" dev eth0
  ip -n "$1" link set eth0 up
}

# tbf_cap NS DEV RATE: what leaves DEV in NS capped at RATE bytes/s by tc
# tbf, the way an uplink caps a host; a bucket of 20 ms, 128 KiB at least
# (tbf needs one GSO packet).
tbf_cap() {
  local burst=$(( $3 / 50 > 131072 ? $3 / 50 : 131072 ))
  ip netns exec "$1" tc qdisc add dev "$2" root tbf rate "${3}bps" burst "$burst" latency 100ms ||
    { echo "error: tc could not cap $2 in $1 (is sch_tbf in this kernel? modprobe sch_tbf)" >&2; exit 1; }
}

# ---- the leechers of a swarm
# wait_leechers DIR T0 SECS LABEL LATE [REPORT]: waits until every leecher
# in LEECH (pids; leecher i logs, stamped, to DIR/L<i>.log) printed its
# `done` line. TOOK[i] is then its time from T0 ($EPOCHREALTIME) to the
# stamp of that line, so how often this looks does not change the figures;
# REPORT I, when given, is called as each one is done. Stops the run with
# an `error:` line when a leecher fails or exits first (LABEL follows its
# name), or when SECS pass (LATE says so).
TOOK=()
wait_leechers() {
  local dir=$1 t0=$2 secs=$3 label=$4 late=$5 report=${6:-} i hit line n=${#LEECH[@]}
  local deadline=$((SECONDS + secs)) pending found
  TOOK=()
  while [ "${#TOOK[@]}" -lt "$n" ]; do
    # One grep over the logs still pending: one per leecher and poll was
    # 240 forks a second at N=48, a fifth of the 2 cores (perf), taken
    # from the peers being measured.
    pending=()
    for i in $(seq 1 "$n"); do
      [ -n "${TOOK[$i]:-}" ] || pending+=("$dir/L$i.log")
    done
    found=$(grep -m1 -H -E '^[0-9.]+ (done|error:) ' "${pending[@]}" 2>/dev/null || true)
    while IFS= read -r hit; do
      [ -n "$hit" ] || continue
      i=${hit%%.log:*}
      i=${i##*/L}
      line=${hit#*.log:}
      case "$line" in
        *" done "*)
          TOOK[i]=$(awk -v a="$t0" -v z="${line%% *}" 'BEGIN {printf "%.3f", z - a}')
          [ -z "$report" ] || "$report" "$i" ;;
        *" error: "*)
          echo "error: leecher L$i$label failed: ${line#* }" >&2
          exit 1 ;;
      esac
    done <<< "$found"
    for i in $(seq 1 "$n"); do
      if [ -z "${TOOK[$i]:-}" ] && ! kill -0 "${LEECH[$((i - 1))]}" 2>/dev/null; then
        echo "error: leecher L$i$label exited before finishing; its log:" >&2
        tail -5 "$dir/L$i.log" >&2
        exit 1
      fi
    done
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "error: $late; KEEP=1 keeps the logs" >&2
      exit 1
    fi
    sleep 0.2
  done
}

# slowest: the largest of TOOK, the swarm's time.
slowest() { printf '%s\n' "${TOOK[@]}" | sort -g | tail -1; }
