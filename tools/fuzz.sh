#!/usr/bin/env bash
# make fuzz: every decoder under AFL++ for FUZZ_SECS seconds each
# (fuzz/src/bin/<target>.rs, built with cargo-afl), FUZZ_JOBS at a time.
# Prints per target
#   fuzz target=NAME execs=N secs=S crashes=C hangs=H total_execs=T
# (T: every run kept in fuzz/out/NAME, across `make fuzz` runs), then a
# summary line; exits non-zero when any target crashed, naming the inputs
# and the command that replays one. Hangs (inputs over AFL++'s time limit)
# are counted but do not fail the run: on a loaded machine they are
# mostly the machine; replay them to tell.
#   make fuzz FUZZ_SECS=60 FUZZ_JOBS=2 FUZZ_TARGETS="frame codec"
set -euo pipefail
cd "$(dirname "$0")/.."

# One line per target: fuzz/src/bin/<name>.rs. A new decoder gets a file
# there and a line here.
ALL_TARGETS=(
  frame
  codec
  tracker_request
  tracker_reply
  peer_request
  peer_reply
  tracker_datagram_request
  tracker_datagram_reply
  datagram
  record_file
  persist
  http_head
  resume_state
  multipart
  handshake
  sealed_datagram
  sealed_stream
  handshake_surplus
)

SECS=${FUZZ_SECS:-60}
JOBS=${FUZZ_JOBS:-$(($(nproc) < 2 ? $(nproc) : 2))}
read -r -a TARGETS <<<"${FUZZ_TARGETS:-${ALL_TARGETS[*]}}"
case "$SECS$JOBS" in
  *[!0-9]*) echo "error: FUZZ_SECS and FUZZ_JOBS are whole numbers (got '$SECS', '$JOBS')" >&2; exit 2 ;;
esac
[ "$SECS" -gt 0 ] && [ "$JOBS" -gt 0 ] || { echo "error: FUZZ_SECS and FUZZ_JOBS must be at least 1" >&2; exit 2; }
for t in "${TARGETS[@]}"; do
  [ -f "fuzz/src/bin/$t.rs" ] || { echo "error: no fuzz target '$t' (fuzz/src/bin/$t.rs); targets: ${ALL_TARGETS[*]}" >&2; exit 2; }
done

# cargo-afl (from crates.io) brings its own AFL++, built for this rustc by
# `cargo afl config --build`. Installed when missing and run as root;
# otherwise the exact commands, and stop.
need_afl() {
  if ! cargo afl --version >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "error: make fuzz needs cargo-afl; install it with:" >&2
      echo "  cargo install --locked cargo-afl && cargo afl config --build" >&2
      exit 1
    fi
    echo "make fuzz: installing cargo-afl (cargo install, a few minutes)"
    cargo install --locked --quiet cargo-afl
  fi
  local log
  log=$(mktemp)
  # Refuses when AFL++ is already built for this rustc: that is fine.
  if ! cargo afl config --build >"$log" 2>&1 && ! grep -q "already built" "$log"; then
    cat "$log" >&2
    echo "error: building AFL++ for this Rust failed; try: cargo afl config --build --force" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
}

# stat FILE KEY: a value from an AFL++ fuzzer_stats file (0 if none).
stat() {
  local v
  v=$(sed -n "s/^$2 *: *//p" "$1" 2>/dev/null | head -n1)
  echo "${v:-0}"
}

# run NAME: one target for $SECS seconds; its result line goes to
# fuzz/out/NAME.result. The out dir is reused (AFL_AUTORESUME), so the
# queue and the execution count build up across runs.
run() {
  local t=$1 out=fuzz/out/$1 stats=fuzz/out/$1/default/fuzzer_stats
  local before_execs before_crashes before_hangs execs crashes hangs total
  [ -d "fuzz/corpus/$t" ] || "fuzz/target/release/$t" --seeds "fuzz/corpus/$t"
  before_execs=$(stat "$stats" execs_done)
  before_crashes=$(stat "$stats" saved_crashes)
  before_hangs=$(stat "$stats" saved_hangs)
  mkdir -p "$out"
  # No UI, no core binding (the machine is shared), no refusal over the
  # CPU governor or a core_pattern this script may not change.
  AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1 AFL_AUTORESUME=1 \
    AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CRASHES=1 \
    timeout --kill-after=10 $((SECS + 60)) \
    cargo afl fuzz -V "$SECS" -i "fuzz/corpus/$t" -o "$out" "fuzz/target/release/$t" \
    >"fuzz/out/$t.log" 2>&1 || true
  if [ ! -f "$stats" ]; then
    echo "fuzz target=$t execs=0 secs=0 crashes=0 hangs=0 total_execs=0 error=see-fuzz/out/$t.log" >"fuzz/out/$t.result"
    return
  fi
  # A resumed run may restart its counters or carry them on: count both.
  execs=$(stat "$stats" execs_done)
  crashes=$(stat "$stats" saved_crashes)
  hangs=$(stat "$stats" saved_hangs)
  [ "$execs" -ge "$before_execs" ] && execs=$((execs - before_execs))
  [ "$crashes" -ge "$before_crashes" ] && crashes=$((crashes - before_crashes))
  [ "$hangs" -ge "$before_hangs" ] && hangs=$((hangs - before_hangs))
  total=$(($(cat "$out/total_execs" 2>/dev/null || echo 0) + execs))
  echo "$total" >"$out/total_execs"
  echo "fuzz target=$t execs=$execs secs=$SECS crashes=$crashes hangs=$hangs total_execs=$total" >"fuzz/out/$t.result"
}

need_afl
echo "make fuzz: building ${#TARGETS[@]} targets (cargo afl build --release in fuzz/)"
(cd fuzz && cargo afl build --release --quiet)
mkdir -p fuzz/out

echo "make fuzz: ${#TARGETS[@]} targets, ${SECS} s each, ${JOBS} at a time"
running=()
for t in "${TARGETS[@]}"; do
  if [ "${#running[@]}" -ge "$JOBS" ]; then
    wait -n || true
    still=()
    for pid in "${running[@]}"; do kill -0 "$pid" 2>/dev/null && still+=("$pid"); done
    running=("${still[@]}")
  fi
  run "$t" &
  running+=($!)
done
wait

all_execs=0 all_crashes=0 all_hangs=0 crashed=()
for t in "${TARGETS[@]}"; do
  line=$(cat "fuzz/out/$t.result" 2>/dev/null ||
    echo "fuzz target=$t execs=0 secs=0 crashes=0 hangs=0 total_execs=0 error=see-fuzz/out/$t.log")
  echo "$line"
  execs=$(sed 's/.* execs=\([0-9]*\).*/\1/' <<<"$line")
  crashes=$(sed 's/.* crashes=\([0-9]*\).*/\1/' <<<"$line")
  all_execs=$((all_execs + execs))
  all_crashes=$((all_crashes + crashes))
  all_hangs=$((all_hangs + $(sed 's/.* hangs=\([0-9]*\).*/\1/' <<<"$line")))
  [ "$crashes" -eq 0 ] || crashed+=("$t")
done
echo "fuzz summary: targets=${#TARGETS[@]} execs=$all_execs secs=$SECS crashes=$all_crashes hangs=$all_hangs"
if [ "$all_crashes" -gt 0 ]; then
  for t in "${crashed[@]}"; do
    echo "error: fuzz target $t crashed; inputs in fuzz/out/$t/default/crashes/, replay one with:" >&2
    echo "  fuzz/target/release/$t --replay fuzz/out/$t/default/crashes/id:..." >&2
  done
  exit 1
fi
