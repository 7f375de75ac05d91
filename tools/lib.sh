# Shared by the scripts in tools/: sizes, ports, process cleanup, waiting.
# Sourcing it installs no trap: each script says what its teardown is, e.g.
#   trap 'cleanup; rm -rf "$WORK"' EXIT; trap 'exit 130' INT TERM

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

# The processes the script started; `cleanup` stops them and waits.
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
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
