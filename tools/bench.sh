#!/usr/bin/env bash
# make bench: MB/s of one transfer between two peers on loopback, with the
# machine's two ceilings measured in the same run: md5sum of the file and a
# plain one-socket copy. MB = 10^6 bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${SIZE:-256M}
RUNS=${RUNS:-3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/p2pshare-bench.XXXXXX")
. tools/lib.sh
trap 'cleanup; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

tools/mkfile "$WORK/A/files/big.bin" "$SIZE"
file="$WORK/A/files/big.bin"
bytes=$(stat -c %s "$file")
cat "$file" > /dev/null   # into the page cache, as for every contender

md5=() copy=() ours=()
tport=$(free_port 18500)
"$BIN/tracker" --port "$tport" --bind 127.0.0.1 --data "$WORK/tracker" > "$WORK/tracker.log" 2>&1 &
PIDS+=($!)
wait_for 10 "the tracker" bash -c "exec 3<>/dev/tcp/127.0.0.1/$tport"
"$BIN/peer" A "$(free_port 19500)" "127.0.0.1:$tport" --dir "$WORK/A" --serve > "$WORK/A.log" 2>&1 &
PIDS+=($!)
wait_for 60 "the seeder to register" holds "127.0.0.1:$tport" big.bin A

for run in $(seq 1 "$RUNS"); do
  t0=$(date +%s.%N); md5sum "$file" > /dev/null; t1=$(date +%s.%N)
  md5+=("$(awk -v b="$bytes" -v a="$t0" -v z="$t1" 'BEGIN {print b / 1e6 / (z - a)}')")
  copy+=("$("$BIN/examples/sockcopy" "$file" "$WORK/copy.bin" | sed -n 's/.*MBps=//p')")
  rm -f "$WORK/copy.bin"
  rm -rf "$WORK/B"
  out=$(printf 'get big.bin\n' | "$BIN/peer" B "$(free_port 19600)" "127.0.0.1:$tport" --dir "$WORK/B")
  echo "$out" | grep -E '^(done|from) ' | sed "s/^/  run $run: /"
  ours+=("$(echo "$out" | sed -n 's/^done .*MBps=//p')")
  cmp -s "$file" "$WORK/B/files/big.bin" || { echo "error: run $run produced a different file" >&2; exit 1; }
done

m_md5=$(printf '%s\n' "${md5[@]}" | median)
m_copy=$(printf '%s\n' "${copy[@]}" | median)
m_ours=$(printf '%s\n' "${ours[@]}" | median)
ceiling=$(printf '%s\n%s\n' "$m_md5" "$m_copy" | sort -g | head -1)
printf '\n%-34s %10s\n' "one $SIZE file, loopback, median of $RUNS" "MB/s"
printf '%-34s %10.1f\n' "md5sum (ceiling)" "$m_md5" "plain socket copy (ceiling)" "$m_copy" "p2pshare peer to peer" "$m_ours"
printf '%-34s %10.2f\n' "p2pshare / slower ceiling" "$(awk -v o="$m_ours" -v c="$ceiling" 'BEGIN {print o / c}')"
