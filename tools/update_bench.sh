#!/usr/bin/env bash
# make update-bench: the owner and N followers of one file move from
# version 1 to version 2, then rsync makes the same update in the same run.
#
#   N=8 SIZE=256M CHANGE=aligned tools/update_bench.sh   (the defaults)
#   CHANGE=aligned   1 % of the file overwritten in place, in 64 KiB regions
#                    at scattered 64 KiB-aligned offsets (SEED picks them)
#   CHANGE=insert    a copy with 1 MiB + 1,111 random bytes inserted in the
#                    middle, renamed over the file
#
# p2pshare: a tracker, the owner O (the file in its files/) and N followers
# (`--follow data.bin`) on loopback. Once every follower holds version 1,
# the owner's copy is changed; the clock runs from the change until every
# follower's files/data.bin is version 2 (the owner's watcher publishes it,
# the followers fetch it by themselves). Bytes come from the peers'
# /metrics counters, before and after: what each follower received, what
# the owner sent.
# rsync: a daemon on loopback serving version 2, N client directories
# holding version 1, N `rsync --no-whole-file` at once; the clock runs until
# the last one exits, the bytes are each client's "Total bytes received".
#
# Prints a line per follower, whether the issue's targets are met (each
# follower fetches at most 1.5 % of the file for aligned, 1 % for insert;
# the origin sends at most 2 x the changed bytes; the fleet is no slower
# than rsync), and last the line of CONTRACT.md:
#   update N=<n> size=<bytes> change=<c> secs=<s> fetched_fraction=<f>
#          origin_sent_fraction=<f> rsync_secs=<s> rsync_fetched_fraction=<f>
# Fractions are of SIZE, version 1's size. A missed target is reported, not
# an error; a follower that never reaches version 2 within TIMEOUT seconds
# (300) is. KEEP=1 keeps the work directory (logs, copies) and says where.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib.sh

N=${N:-8}
SIZE=${SIZE:-256M}
CHANGE=${CHANGE:-aligned}
SEED=${SEED:-18}
TIMEOUT=${TIMEOUT:-300}
KEEP=${KEEP:-0}
NAME=data.bin
REGION=65536   # the aligned change's unit, and its offsets' alignment

# ---- settings
whole N 1 100
whole SEED
whole TIMEOUT
F=$(size_bytes "$SIZE") || exit 2
if [ "$F" -lt $((1024 * 1024)) ]; then
  echo "error: SIZE must be at least 1M (1 % of it in 64 KiB regions), got $SIZE" >&2
  exit 2
fi
case "$CHANGE" in
  aligned)
    # 1 % of the file, rounded to whole regions (at least one).
    regions=$(( (F / 100 + REGION / 2) / REGION ))
    [ "$regions" -ge 1 ] || regions=1
    CHANGED=$((regions * REGION))
    FETCH_TARGET=0.015 ;;
  insert)
    INSERT=$((1024 * 1024 + 1111))
    CHANGED=$INSERT
    FETCH_TARGET=0.01 ;;
  *) echo "error: CHANGE must be aligned or insert, got '$CHANGE'" >&2; exit 2 ;;
esac
for b in peer tracker; do
  [ -x "$BIN/$b" ] || { echo "error: $BIN/$b is missing: run 'make build' (or make update-bench, which builds)" >&2; exit 1; }
done
# rsync is checked now, so a missing one does not waste the p2pshare half.
if ! command -v rsync >/dev/null; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "update-bench: installing rsync (apt-get install -y rsync)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsync >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsync >/dev/null 2>&1; } ||
      true
  fi
  command -v rsync >/dev/null ||
    { echo "error: rsync is missing: install it (sudo apt-get install -y rsync) and retry" >&2; exit 1; }
fi

work_dir update

# elapsed T0 [T1]: seconds from T0 to T1 (both $EPOCHREALTIME; T1 now by default).
elapsed() { awk -v a="$1" -v z="${2:-$EPOCHREALTIME}" 'BEGIN {printf "%.3f", z - a}'; }
mib() { awk -v b="$1" 'BEGIN {printf "%.2f MiB", b / 1048576}'; }
pct() { awk -v b="$1" -v f="$F" 'BEGIN {printf "%.2f %%", 100 * b / f}'; }
# cpu PID...: the CPU time (user + system, with reaped children) the
# processes have used so far, in clock ticks. Both sides' CPU is printed:
# on a machine with fewer cores than processes, it is what bounds the time.
cpu() {
  local t=0 pid
  for pid in "$@"; do
    # Fields 14-17 of /proc/PID/stat, counted after the ") " closing comm.
    t=$((t + $(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13 + $14 + $15}' || echo 0)))
  done
  echo "$t"
}
secs_of_ticks() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz}'; }
# The shell's reaped children, user + system, in clock ticks: `times` in
# this shell (in a subshell it would count the subshell's children), then
# read back.
children_cpu() {
  times > "$WORK/times"
  tail -1 "$WORK/times" | awk -v hz="$(getconf CLK_TCK)" '{
    t = 0
    for (i = 1; i <= 2; i++) { split($i, a, /m|s/); t += a[1] * 60 + a[2] }
    printf "%d", t * hz }'
}

# counters PORT: the peer's byte counters from its /metrics, as
# "down up reused" (reused is "-" where the peer does not count it). A
# plain HTTP/1.0 GET over bash's /dev/tcp: the server closes after one
# answer, so no client program is needed.
counters() {
  local page
  page=$(exec 3<>"/dev/tcp/127.0.0.1/$1" &&
    printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 && cat <&3) || return 1
  awk '$1 == "p2pshare_peer_received_bytes_total" {d = $2}
       $1 == "p2pshare_peer_sent_bytes_total" {u = $2}
       $1 == "p2pshare_peer_reused_bytes_total" {r = $2}
       END {if (d == "" || u == "") exit 1; printf "%s %s %s\n", d, u, (r == "" ? "-" : r)}' <<< "$page"
}

# ---- versions 1 and 2, made before anything runs (version 2's MD5 is
# what the followers must reach)
V1=$WORK/v1/$NAME
V2=$WORK/v2/$NAME   # also the rsync daemon's module
tools/mkfile "$V1" "$SIZE"
mkdir -p "$WORK/v2"
case "$CHANGE" in
  aligned)
    # Distinct region slots from a 48-bit linear congruential generator
    # (drand48's constants) in shell arithmetic, so SEED gives the same
    # offsets on every machine (awk's rand differs between awks).
    slots=$((F / REGION))
    state=$SEED
    declare -A picked=()
    OFFSETS=()
    while [ "${#OFFSETS[@]}" -lt "$regions" ]; do
      state=$(( (state * 0x5DEECE66D + 0xB) & 0xFFFFFFFFFFFF ))
      slot=$(( (state >> 17) % slots ))
      [ -z "${picked[$slot]:-}" ] || continue
      picked[$slot]=1
      OFFSETS+=("$slot")
    done
    tools/mkfile "$WORK/patch.bin" $((regions * REGION))
    # apply_change FILE: the regions written over FILE in place.
    apply_change() {
      local k
      for k in "${!OFFSETS[@]}"; do
        dd if="$WORK/patch.bin" of="$1" bs=$REGION skip="$k" seek="${OFFSETS[$k]}" count=1 \
          conv=notrunc status=none
      done
    }
    cp "$V1" "$V2"
    apply_change "$V2"
    what="$regions regions of 64 KiB overwritten in place ($(mib "$CHANGED"), $(pct "$CHANGED") of the file; SEED=$SEED)" ;;
  insert)
    mid=$((F / 2))
    tools/mkfile "$WORK/insert.bin" "$INSERT"
    { head -c "$mid" "$V1"; cat "$WORK/insert.bin"; tail -c +$((mid + 1)) "$V1"; } > "$V2"
    what="$INSERT random bytes (1 MiB + 1,111) inserted at offset $mid, the copy renamed over the file" ;;
esac
v1_md5=$(md5_of "$V1")
v2_md5=$(md5_of "$V2")
[ "$v1_md5" != "$v2_md5" ] || { echo "error: version 2 came out equal to version 1" >&2; exit 1; }
echo "update-bench: owner + $N followers, $SIZE file ($F bytes), change=$CHANGE: $what"

# ---- the swarm: tracker, owner, followers. Ports from a random base below
# the ephemeral range, as in tools/swarm.sh, each peer a block port and an
# HTTP port (for /metrics).
p=$((10000 + RANDOM % 20000))
next_port() { p=$(free_port $((p + 1))); }
next_port; tport=$p
taddr=127.0.0.1:$tport
"$BIN/tracker" --port "$tport" --bind 127.0.0.1 --data "$WORK/tracker" > "$WORK/tracker.log" 2>&1 &
PIDS+=($!)
wait_for 10 "the tracker" bash -c "exec 3<>/dev/tcp/127.0.0.1/$tport"

mkdir -p "$WORK/O/files"
cp "$V1" "$WORK/O/files/$NAME"
next_port; oport=$p
next_port; ohttp=$p
"$BIN/peer" O "$oport" "$taddr" --dir "$WORK/O" --serve --http "$ohttp" > "$WORK/O.log" 2>&1 &
PIDS+=($!)
wait_for 120 "the owner to register $NAME" holds "$taddr" "$NAME" O

HTTP=()       # follower i's HTTP port is HTTP[i-1]
FOLLOWER=()   # and its pid FOLLOWER[i-1]
for i in $(seq 1 "$N"); do
  next_port; port=$p
  next_port; HTTP+=("$p")
  "$BIN/peer" "F$i" "$port" "$taddr" --dir "$WORK/F$i" --serve --follow "$NAME" --http "$p" \
    > "$WORK/F$i.log" 2>&1 &
  PIDS+=($!)
  FOLLOWER+=($!)
done

# alive I: follower I still runs; else says so with its log's end, and fails.
alive() {
  kill -0 "${FOLLOWER[$(($1 - 1))]}" 2>/dev/null && return 0
  local why
  why=$(grep -m1 '^error: ' "$WORK/F$1.log" || true)
  if [ -n "$why" ]; then
    echo "error: follower F$1 exited: ${why#error: }" >&2
  else
    echo "error: follower F$1 exited; the end of its log:" >&2
    tail -5 "$WORK/F$1.log" >&2
  fi
  return 1
}

# ---- version 1 everywhere. The move into files/ is atomic, so a file
# there is complete; its MD5 is checked once it appears.
echo "waiting for the $N followers to take version 1"
t0=$EPOCHREALTIME
deadline=$((SECONDS + TIMEOUT))
for i in $(seq 1 "$N"); do
  until [ -f "$WORK/F$i/files/$NAME" ]; do
    alive "$i" || exit 1
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "error: follower F$i did not receive version 1 within $TIMEOUT s (TIMEOUT=); KEEP=1 keeps the logs" >&2
      exit 1
    fi
    sleep 0.2
  done
done
for i in $(seq 1 "$N"); do
  got=$(md5_of "$WORK/F$i/files/$NAME")
  [ "$got" = "$v1_md5" ] ||
    { echo "error: follower F$i holds md5 $got, not version 1's $v1_md5" >&2; exit 1; }
done
echo "all $N followers hold version 1 (md5 $v1_md5) after $(elapsed "$t0") s"

# ---- counters before the change; each file's identity (inode, size,
# mtime), whose change is what the polling below looks for
declare -A DOWN0=() UP0=() REUSED0=() SIG=()
read_counters() {   # read_counters PORT: sets down up reused
  local c
  c=$(counters "$1") || { echo "error: no byte counters on 127.0.0.1:$1/metrics" >&2; return 1; }
  read -r down up reused <<< "$c"
}
for i in $(seq 1 "$N"); do
  read_counters "${HTTP[$((i - 1))]}"
  DOWN0[$i]=$down UP0[$i]=$up REUSED0[$i]=$reused
done
read_counters "$ohttp"
owner_up0=$up
# signatures: one `stat` for all the followers' files, a line each,
# "<i> <inode> <size> <mtime>" (a file missing for a moment has no line).
signatures() {
  stat -c '%n %i %s %y' "$WORK"/F*/files/"$NAME" 2>/dev/null |
    sed "s#^$WORK/F\([0-9]*\)/files/$NAME #\1 #" || true
}
while read -r i sig; do SIG[$i]=$sig; done < <(signatures)

# ---- the change, and the clock
if [ "$CHANGE" = insert ]; then
  # The copy is written beside files/ (same file system), so the rename is
  # the change and nothing half-written is ever in the watched folder.
  cp "$V2" "$WORK/O/$NAME.next"
  t0=$EPOCHREALTIME
  mv "$WORK/O/$NAME.next" "$WORK/O/files/$NAME"
else
  t0=$EPOCHREALTIME
  apply_change "$WORK/O/files/$NAME"
fi
cpu0=$(cpu "${PIDS[@]}")

# ---- until every follower holds version 2. A follower's time is when its
# file's identity changed (the swap is atomic: the new file appears whole);
# the MD5s are checked once every file has changed, so this script's
# hashing does not compete with the followers while they work, and a
# changed file that is not version 2 goes back to waiting.
declare -A REACHED=()
deadline=$((SECONDS + TIMEOUT))
while :; do
  now=$EPOCHREALTIME
  while read -r i sig; do
    if [ -z "${REACHED[$i]:-}" ] && [ "$sig" != "${SIG[$i]}" ]; then
      REACHED[$i]=$now
      SIG[$i]=$sig
    fi
  done < <(signatures)
  if [ "${#REACHED[@]}" -eq "$N" ]; then
    for i in "${!REACHED[@]}"; do
      [ "$(md5_of "$WORK/F$i/files/$NAME")" = "$v2_md5" ] || unset "REACHED[$i]"
    done
    [ "${#REACHED[@]}" -lt "$N" ] || break
  fi
  for i in $(seq 1 "$N"); do alive "$i" || exit 1; done
  if [ "$SECONDS" -ge "$deadline" ]; then
    missing=()
    for i in $(seq 1 "$N"); do [ -n "${REACHED[$i]:-}" ] || missing+=("F$i"); done
    echo "error: ${missing[*]} did not reach version 2 (md5 $v2_md5) within $TIMEOUT s of the change (TIMEOUT=); KEEP=1 keeps the logs" >&2
    exit 1
  fi
  sleep 0.1
done

# ---- the p2pshare figures
p2p_cpu=$(( $(cpu "${PIDS[@]}") - cpu0 ))
max_down=0
for i in $(seq 1 "$N"); do
  read_counters "${HTTP[$((i - 1))]}"
  d=$((down - DOWN0[$i])) u=$((up - UP0[$i]))
  [ "$d" -le "$max_down" ] || max_down=$d
  if [ "$reused" = - ] || [ "${REUSED0[$i]}" = - ]; then r="not counted"; else r=$(mib $((reused - REUSED0[$i]))); fi
  printf 'F%-3s version 2 after %8.3f s: fetched %s (%s), reused %s, sent %s\n' \
    "$i" "$(elapsed "$t0" "${REACHED[$i]}")" "$(mib "$d")" "$(pct "$d")" "$r" "$(mib "$u")"
done
read_counters "$ohttp"
owner_sent=$((up - owner_up0))
secs=$(for i in "${!REACHED[@]}"; do elapsed "$t0" "${REACHED[$i]}"; echo; done | sort -g | tail -1)
echo "owner sent $(mib "$owner_sent") ($(pct "$owner_sent")); the change is $(mib "$CHANGED") ($(pct "$CHANGED"))"
echo "p2pshare: all $N followers hold version 2 (md5 $v2_md5) after $secs s, $(secs_of_ticks "$p2p_cpu") s of CPU in all (tracker, owner, followers; $(nproc) cores)"

# The swarm is done: stopped, and its copies dropped unless kept, before
# rsync's turn (a quiet machine for both, and half the disk).
cleanup
PIDS=()
[ "$KEEP" = 1 ] || rm -rf "$WORK"/F* "$WORK/O"

# ---- rsync: a daemon serving version 2, N clients holding version 1
rport=$(free_port $((p + 1)))
cat > "$WORK/rsyncd.conf" <<EOF
# Generated by tools/update_bench.sh. uid/gid: as root, the daemon would
# otherwise become nobody, who cannot read this private work directory.
pid file = $WORK/rsyncd.pid
log file = $WORK/rsyncd.log
use chroot = no
uid = $(id -u)
gid = $(id -g)
numeric ids = yes
[mod]
path = $WORK/v2
read only = yes
EOF
rsync --daemon --no-detach --config="$WORK/rsyncd.conf" --address=127.0.0.1 --port="$rport" \
  > "$WORK/rsyncd.out" 2>&1 &
PIDS+=($!)
wait_for 10 "the rsync daemon" bash -c "exec 3<>/dev/tcp/127.0.0.1/$rport"
for i in $(seq 1 "$N"); do
  mkdir -p "$WORK/R$i"
  cp --reflink=auto "$V1" "$WORK/R$i/$NAME"
  # An old mtime: with the same size (aligned) and time, rsync's quick
  # check would skip the file as unchanged.
  touch -d '2000-01-01 00:00:00' "$WORK/R$i/$NAME"
done
echo "rsync: $N clients at once from a daemon on 127.0.0.1:$rport"
RSYNC=()
children_cpu > "$WORK/cpu0"
rsync_cpu0=$(( $(cat "$WORK/cpu0") + $(cpu "${PIDS[@]}") ))
t0=$EPOCHREALTIME
for i in $(seq 1 "$N"); do
  rsync --no-whole-file -a --stats "rsync://127.0.0.1:$rport/mod/$NAME" "$WORK/R$i/" \
    > "$WORK/R$i.log" 2>&1 &
  RSYNC+=($!)
done
failed=0
for i in $(seq 1 "$N"); do wait "${RSYNC[$((i - 1))]}" || failed=$i; done
rsync_secs=$(elapsed "$t0")
sleep 0.2   # the daemon reaps its per-client children, whose CPU it then counts
children_cpu > "$WORK/cpu1"
rsync_cpu=$(( $(cat "$WORK/cpu1") + $(cpu "${PIDS[@]}") - rsync_cpu0 ))
if [ "$failed" -ne 0 ]; then
  echo "error: rsync client $failed failed; its output:" >&2
  tail -5 "$WORK/R$failed.log" >&2
  exit 1
fi
rsync_max=0
for i in $(seq 1 "$N"); do
  got=$(md5_of "$WORK/R$i/$NAME")
  [ "$got" = "$v2_md5" ] || { echo "error: rsync client $i ended with md5 $got, not version 2's" >&2; exit 1; }
  # "Total bytes received: 2,751,234" (thousands separated since rsync 3.1).
  b=$(sed -n 's/^Total bytes received: \([0-9,]*\).*/\1/p' "$WORK/R$i.log" | tr -d ,)
  [ -n "$b" ] || { echo "error: no 'Total bytes received' in rsync client $i's --stats" >&2; exit 1; }
  [ "$b" -le "$rsync_max" ] || rsync_max=$b
done
echo "rsync: all $N clients hold version 2 after $rsync_secs s, $(secs_of_ticks "$rsync_cpu") s of CPU in all (daemon, clients); the most one received: $(mib "$rsync_max") ($(pct "$rsync_max"))"

# ---- targets, then the contract's line
awk -v n="$N" -v f="$F" -v change="$CHANGE" -v secs="$secs" -v down="$max_down" -v sent="$owner_sent" \
  -v changed="$CHANGED" -v ftarget="$FETCH_TARGET" -v rsecs="$rsync_secs" -v rdown="$rsync_max" 'BEGIN {
  fetched = down / f; origin = sent / f; otarget = 2 * changed / f
  printf "targets: each follower fetched <= %.1f %%: %s (%.2f %%); origin sent <= 2 x the change (%.2f %%): %s (%.2f %%); no slower than rsync: %s (%.3f s vs %.3f s)\n", \
    100 * ftarget, (fetched <= ftarget) ? "met" : "missed", 100 * fetched, \
    100 * otarget, (origin <= otarget) ? "met" : "missed", 100 * origin, \
    (secs <= rsecs) ? "met" : "missed", secs, rsecs
  printf "update N=%d size=%d change=%s secs=%.3f fetched_fraction=%.4f origin_sent_fraction=%.4f rsync_secs=%.3f rsync_fetched_fraction=%.4f\n", \
    n, f, change, secs, fetched, origin, rsecs, rdown / f
}'
