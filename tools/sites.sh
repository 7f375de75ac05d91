#!/usr/bin/env bash
# make sites: a swarm spread over SITES sites, with `--site` and then the
# same swarm without it; how many copies of the file crossed into each
# remote site, and how long the swarm took against its bound.
#
#   SITES=2 N=16 SIZE=64M WAN=4M LAN=40M tools/sites.sh   (root)
#
# Every process has its own network namespace. The hosts of a site hang
# off that site's switch (a bridge in a namespace of its own), each host's
# upload capped at LAN by tc tbf on its interface; each site's switch is
# joined to a core switch by one link capped at WAN in each direction
# (tbf on both ends), so whatever goes from one site to another passes
# the WAN caps of both sites' links: with two sites, one link of WAN each
# way. Host 0 is the tracker and host 1 the seeder, both in site 1;
# leecher i is in site ((i - 1) mod SITES) + 1.
#
# wan_copies: bytes the core sent down each remote site's link (headers
# included) over the file's size, the largest. The bound the swarm time is
# divided by: one copy across the WAN, then the swarm inside a site, whose
# lower bound T* is F/LAN when every upload is LAN (docs/PERFORMANCE.md, Sites):
# bound = F/WAN + F/LAN.
# KEEP=1 keeps the logs; RUNS=k repeats both runs k times (one line each).
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib.sh

SITES=${SITES:-2}
N=${N:-16}
SIZE=${SIZE:-64M}
WAN=${WAN:-4M}
LAN=${LAN:-40M}
KEEP=${KEEP:-0}
RUNS=${RUNS:-1}
NAME=sites.bin

whole SITES 2 16
whole N 1 100
whole RUNS
F=$(size_bytes "$SIZE") || exit 2
W=$(size_bytes "$WAN") || exit 2
L=$(size_bytes "$LAN") || exit 2
if [ "$F" -lt 1 ] || [ "$W" -lt 1024 ] || [ "$L" -lt 1024 ]; then
  echo "error: SIZE must be above 0, WAN and LAN at least 1K" >&2
  exit 2
fi
need_netns "make sites"
[ "${1:-}" != --check ] || exit 0
need_bins peer tracker

work_dir sites

# ---- the network: a core switch, one switch per site, the hosts
core="p2pt$$-core"
netns_switch "$core"
for s in $(seq 1 "$SITES"); do
  sw="p2pt$$-s$s"
  netns_switch "$sw"
  ip link add up0 netns "$sw" type veth peer name "site$s" netns "$core"
  ip -n "$sw" link set up0 master br0 up
  ip -n "$core" link set "site$s" master br0 up
  tbf_cap "$sw" up0 "$W"        # out of the site
  tbf_cap "$core" "site$s" "$W" # into the site
done
site_of() { if [ "$1" -le 1 ]; then echo 1; else echo $(( ($1 - 2) % SITES + 1 )); fi; }
HOST_NS=()
HOST_IP=()
for h in $(seq 0 $((N + 1))); do
  s=$(site_of "$h")
  ns="p2pt$$-h$h"
  netns_host "$ns" "p2pt$$-s$s" "p$h" "10.214.$s.$((h + 1))/16"
  tbf_cap "$ns" eth0 "$L"
  HOST_NS+=("$ns")
  HOST_IP+=("10.214.$s.$((h + 1))")
done
into_site() { ip netns exec "$core" cat "/sys/class/net/site$1/statistics/tx_bytes"; }
on() { ON=(ip netns exec "${HOST_NS[$1]}"); }

tools/mkfile "$WORK/seed/files/$NAME" "$SIZE"
want=$(md5_of "$WORK/seed/files/$NAME")
echo "sites: $SITES sites, 1 seeder (site 1) + $N leechers, $SIZE file ($F bytes), LAN $LAN/s per host, WAN $WAN/s each way"

# swarm TAG AWARE: one whole swarm; sets SECS and COPIES.
swarm() {
  local tag=$1 aware=$2 dir="$WORK/$1" i s
  mkdir -p "$dir"
  cp -r "$WORK/seed" "$dir/S"
  site_arg() { if [ "$aware" = 1 ]; then echo "--site site$1"; fi; }
  PIDS=()
  on 0
  "${ON[@]}" "$BIN/tracker" --port 8000 --bind "${HOST_IP[0]}" --data "$dir/tracker" > "$dir/tracker.log" 2>&1 &
  PIDS+=($!)
  on 1
  AT=("${ON[@]}")
  wait_for 10 "the tracker" "${AT[@]}" bash -c "exec 3<>/dev/tcp/${HOST_IP[0]}/8000"
  local taddr="${HOST_IP[0]}:8000"
  # shellcheck disable=SC2046
  "${ON[@]}" "$BIN/peer" S 9000 "$taddr" --dir "$dir/S" --serve $(site_arg 1) \
    > >(stamp > "$dir/S.log") 2>&1 &
  PIDS+=($!)
  WORK_SAVED=$WORK; WORK=$dir
  wait_for 120 "the seeder to register $NAME" holds "$taddr" "$NAME" S
  WORK=$WORK_SAVED
  local before=() after=()
  for s in $(seq 1 "$SITES"); do before[s]=$(into_site "$s"); done
  local t0=$EPOCHREALTIME
  LEECH=()
  for i in $(seq 1 "$N"); do
    on $((i + 1))
    s=$(site_of $((i + 1)))
    # shellcheck disable=SC2046
    "${ON[@]}" "$BIN/peer" "L$i" 9000 "$taddr" --dir "$dir/L$i" --serve --get "$NAME" \
      $(site_arg "$s") > >(stamp > "$dir/L$i.log") 2>&1 &
    PIDS+=($!)
    LEECH+=($!)
  done
  local allowed
  allowed=$(awk -v f="$F" -v w="$W" -v l="$L" 'BEGIN {printf "%d", 60 + 4 * (f / w + f / l)}')
  wait_leechers "$dir" "$t0" "$allowed" " ($tag)" "the $tag swarm did not finish within $allowed s"
  for s in $(seq 1 "$SITES"); do after[s]=$(into_site "$s"); done
  for i in $(seq 1 "$N"); do
    [ "$(md5_of "$dir/L$i/files/$NAME")" = "$want" ] ||
      { echo "error: L$i ($tag) has a corrupt copy" >&2; exit 1; }
  done
  cleanup
  PIDS=()
  SECS=$(slowest)
  COPIES=0
  for s in $(seq 2 "$SITES"); do
    COPIES=$(awk -v a="${before[$s]}" -v b="${after[$s]}" -v f="$F" -v c="$COPIES" \
      'BEGIN {x = (b - a) / f; printf "%.3f", (x > c) ? x : c}')
  done
  printf '%-8s all %d copies verified; last leecher %8.3f s; %.3f copies into the fullest remote site\n' \
    "$tag" "$N" "$SECS" "$COPIES"
  [ "$KEEP" = 1 ] || rm -rf "$dir"
}

bound=$(awk -v f="$F" -v w="$W" -v l="$L" 'BEGIN {printf "%.3f", f / w + f / l}')
for r in $(seq 1 "$RUNS"); do
  swarm "site$r" 1
  secs=$SECS copies=$COPIES
  swarm "blind$r" 0
  awk -v sites="$SITES" -v n="$N" -v f="$F" -v c="$copies" -v secs="$secs" -v bound="$bound" \
    -v bc="$COPIES" -v bs="$SECS" 'BEGIN {
    ratio = secs / bound
    printf "with --site: %.3f copies per remote site (target <= 1.30: %s), %.3f s = %.3f x the bound %.3f s (target <= 1.30: %s)\n", \
      c, (c <= 1.3) ? "met" : "missed", secs, ratio, bound, (ratio <= 1.3) ? "met" : "missed"
    printf "sites sites=%d peers=%d size=%d wan_copies=%.3f secs=%.3f bound=%.3f ratio=%.3f blind_wan_copies=%.3f blind_secs=%.3f\n", \
      sites, n, f, c, secs, bound, ratio, bc, bs
  }'
done
