# Shared by the demo and bench scripts: ports, process cleanup, waiting.

BIN=${BIN:-target/release}

# A TCP port on 127.0.0.1 that nothing listens on, starting from $1.
free_port() {
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND until it succeeds.
wait_for() {
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "error: timed out waiting for $what" >&2; return 1; fi
    sleep 0.2
  done
}

# holds TRACKER FILE PEER_ID: true when the tracker lists PEER_ID as a holder.
holds() {
  printf 'whohas %s\n' "$2" | "$BIN/peer" probe$$ "$(free_port 29000)" "$1" --dir "$WORK/probe" 2>/dev/null | grep -q "^$3 "
}

md5_of() { md5sum "$1" | cut -d' ' -f1; }
