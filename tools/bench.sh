#!/usr/bin/env bash
# make bench: one 1->1 transfer between two peers on loopback, timed as the
# whole `get` process (spawn to exit: start-up, tracker lookups, transfer,
# verification, the move into files/, leaving the tracker), against honest
# ceilings measured in the same run on the same file:
#   md5sum     the whole-file MD5 every download must compute (the contract's
#              ceiling: `get` can never beat one MD5 pass over the file);
#   sha256sum  coreutils' SHA-256 of the file (the piece hashes' algorithm;
#              coreutils uses no SHA-NI, so this one is easy to beat);
#   socket     a file copied over one loopback TCP connection into a file,
#              by socat with 1 MiB buffers (examples/sockcopy where socat is
#              missing and cannot be installed).
# Each run deletes the previous download first, so every run starts alike,
# and the contenders take turns within a run. Ratios are per run (get's
# rate over the ceiling's, same run), then the median over the runs.
# MB = 10^6 bytes. SIZE=256M RUNS=5 by default.
# RT=1 (root only) runs the whole bench, every contender alike, under
# SCHED_FIFO (tools/lib.sh: realtime).
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib.sh
realtime "$@"
SIZE=${SIZE:-256M}
RUNS=${RUNS:-5}
work_dir bench

if ! command -v socat >/dev/null && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "make bench: installing socat for the socket-copy ceiling"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq socat >/dev/null 2>&1 || true
fi

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# elapsed T0: seconds since T0 (an $EPOCHREALTIME), no fork to read the clock.
elapsed() { awk -v a="$1" -v z="$EPOCHREALTIME" 'BEGIN {printf "%.4f", z - a}'; }
rate() { awk -v b="$bytes" -v s="$1" 'BEGIN {printf "%.1f", b / 1e6 / s}'; }
ratio() { awk -v num="$1" -v den="$2" 'BEGIN {printf "%.3f", den / num}'; }

tools/mkfile "$WORK/A/files/big.bin" "$SIZE"
file="$WORK/A/files/big.bin"
bytes=$(stat -c %s "$file")
cat "$file" > /dev/null   # into the page cache, as for every contender

# listening PORT: something listens on 127.0.0.1:PORT (read from the kernel's
# table: connecting to check would take socat's one connection).
listening() {
  grep -qi "^ *[0-9]*: 0100007F:$(printf %04X "$1") 00000000:0000 0A" /proc/net/tcp
}

# One copy of the file over a loopback socket into $WORK/copy.bin; prints
# the seconds from the sender's start to the receiver's exit.
socket_copy() {
  rm -f "$WORK/copy.bin"
  if command -v socat >/dev/null; then
    local port t0
    port=$(free_port 21500)
    socat -u -b 1048576 "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" \
      "OPEN:$WORK/copy.bin,creat,trunc" &
    local rx=$!
    wait_for 10 "socat to listen" listening "$port"
    t0=$EPOCHREALTIME
    socat -u -b 1048576 "OPEN:$file" "TCP:127.0.0.1:$port"
    wait "$rx"
    elapsed "$t0"
  else
    "$BIN/examples/sockcopy" "$file" "$WORK/copy.bin" | sed -n 's/.*secs=\([0-9.]*\).*/\1/p'
  fi
  cmp -s "$file" "$WORK/copy.bin" || { echo "error: the socket copy differs" >&2; return 1; }
  rm -f "$WORK/copy.bin"
}
socket_name=$(command -v socat >/dev/null && echo "socat" || echo "examples/sockcopy")

tport=$(free_port 18500)
"$BIN/tracker" --port "$tport" --bind 127.0.0.1 --data "$WORK/tracker" > "$WORK/tracker.log" 2>&1 &
PIDS+=($!)
wait_for 10 "the tracker" bash -c "exec 3<>/dev/tcp/127.0.0.1/$tport"
"$BIN/peer" A "$(free_port 19500)" "127.0.0.1:$tport" --dir "$WORK/A" --serve > "$WORK/A.log" 2>&1 &
seeder=$!
PIDS+=("$seeder")
wait_for 60 "the seeder to register" holds "127.0.0.1:$tport" big.bin A

r_md5=() r_sha=() r_sock=() t_get=() t_md5=() t_sha=() t_sock=() rss=()
printf 'one %s file (%s bytes), loopback; get = the whole process, spawn to exit%s\n' "$SIZE" "$bytes" \
  "$([ -n "${BENCH_RT_ON:-}" ] && echo '; every contender under SCHED_FIFO (RT=1)')"
for run in $(seq 1 "$RUNS"); do
  rm -rf "$WORK/B"   # every run starts alike: no file, no partial, no cache
  t0=$EPOCHREALTIME; md5sum "$file" > /dev/null; m=$(elapsed "$t0")
  t0=$EPOCHREALTIME
  out=$(printf 'get big.bin\n' |
    /usr/bin/time -f '%M' -o "$WORK/rss" "$BIN/peer" B "$(free_port 19600)" "127.0.0.1:$tport" --dir "$WORK/B" 2> "$WORK/B.log") ||
    { echo "error: run $run: get failed:" >&2; cat "$WORK/B.log" >&2; exit 1; }
  g=$(elapsed "$t0")
  cmp -s "$file" "$WORK/B/files/big.bin" || { echo "error: run $run produced a different file" >&2; exit 1; }
  t0=$EPOCHREALTIME; sha256sum "$file" > /dev/null; s=$(elapsed "$t0")
  c=$(socket_copy)
  kib=$(tail -1 "$WORK/rss")
  t_get+=("$g") t_md5+=("$m") t_sha+=("$s") t_sock+=("$c") rss+=("$kib")
  r_md5+=("$(ratio "$g" "$m")") r_sha+=("$(ratio "$g" "$s")") r_sock+=("$(ratio "$g" "$c")")
  echo "$out" | grep -E '^done ' | sed "s/^/  run $run: /"
  printf '  run %d: get %.3f s %s MB/s (peer RSS %d MiB) | md5sum %s MB/s | sha256sum %s MB/s | %s %s MB/s | get/md5sum %s\n' \
    "$run" "$g" "$(rate "$g")" $((kib / 1024)) "$(rate "$m")" "$(rate "$s")" "$socket_name" "$(rate "$c")" "${r_md5[-1]}"
done

med() { printf '%s\n' "$@" | median; }
seeder_rss=$(awk '/^VmHWM/ {print int($2 / 1024)}' "/proc/$seeder/status" 2>/dev/null || echo "?")
max_rss=$(printf '%s\n' "${rss[@]}" | sort -g | tail -1)
printf '\n%-40s %10s\n' "medians of $RUNS runs" "MB/s"
printf '%-40s %10s\n' \
  "p2pshare get (whole process)" "$(rate "$(med "${t_get[@]}")")" \
  "md5sum" "$(rate "$(med "${t_md5[@]}")")" \
  "sha256sum" "$(rate "$(med "${t_sha[@]}")")" \
  "socket copy ($socket_name)" "$(rate "$(med "${t_sock[@]}")")"
printf 'peer RSS: getter at most %d MiB, seeder %s MiB\n' $((max_rss / 1024)) "$seeder_rss"
printf 'bench size=%s runs=%s rt=%s get_MBps=%s md5sum_MBps=%s get/md5sum=%s get/sha256sum=%s get/socket=%s\n' \
  "$bytes" "$RUNS" "${BENCH_RT_ON:-0}" "$(rate "$(med "${t_get[@]}")")" "$(rate "$(med "${t_md5[@]}")")" \
  "$(med "${r_md5[@]}")" "$(med "${r_sha[@]}")" "$(med "${r_sock[@]}")"
