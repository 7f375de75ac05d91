#!/usr/bin/env bash
# make calibrate: the simulator against reality, in the same run. Runs
# `make swarm` (real peers on loopback) and then `make simulate` with the
# same N, SIZE and LIMIT, and prints both ratios to T* and both seeder
# copies, and whether the ratios agree within 15 %:
#
#   calibrate N=8 swarm=1.179 simulate=1.026 differ=13.0% agree=yes
#
#   make calibrate N=8 SIZE=128M LIMIT=10M   (the defaults, make swarm's)
# RTT, LOW_WATER, QUANTUM, SEED pass to the simulator (see tools/simulate.sh).
#
# make swarm's seeder copies are the blocks the leechers wrote first from
# the seeder (their `from S` lines); the simulator's are every byte that
# left the seeder's link. It also prints the simulator's figure that
# counts like make swarm's ("written first").
#
# Also printed: the real leechers' own download time (their `done ... secs=`
# line, from the start of the download, without process start-up and the
# tracker lookup) over T*, which is what the simulator's clock measures.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib.sh

export N=${N:-8} SIZE=${SIZE:-128M} LIMIT=${LIMIT:-10M}
work_dir calibrate
OUT=$WORK

echo "calibrate: make swarm, then make simulate, N=$N SIZE=$SIZE LIMIT=$LIMIT"
# The swarm's work directory (kept for its logs) inside ours, which the
# teardown removes however this run ends.
in_background env KEEP=1 TMPDIR="$WORK" tools/swarm.sh > "$OUT/swarm.txt" 2>&1 || { cat "$OUT/swarm.txt" >&2; exit 1; }
work=$(sed -n 's/^logs kept in //p' "$OUT/swarm.txt")
real=$(grep '^swarm N=' "$OUT/swarm.txt")
# The longest download as the leechers' own clocks measured it.
inner=$(cat "$work"/L*.log | sed -n 's/^[0-9.]* done .* secs=\([0-9.]*\) .*/\1/p' | sort -g | tail -1)
rm -rf "$work"
in_background tools/simulate.sh > "$OUT/sim.txt" 2>&1 || { cat "$OUT/sim.txt" >&2; exit 1; }
sim=$(grep '^simulate peers=' "$OUT/sim.txt")
first=$(sed -n 's/.* \([0-9.]*\) written first.*/\1/p' "$OUT/sim.txt")

field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }
rr=$(field ratio "$real"); rc=$(field seeder_copies "$real"); tstar=$(field tstar "$real")
sr=$(field ratio "$sim"); sc=$(field seeder_copies "$sim")
echo "$real"
echo "$sim"
awk -v n="$N" -v rr="$rr" -v rc="$rc" -v sr="$sr" -v sc="$sc" -v first="$first" \
    -v inner="$inner" -v tstar="$tstar" 'BEGIN {
  d = (sr - rr) / rr; if (d < 0) d = -d
  printf "%-44s %6s   %6s\n", "", "swarm", "simulate"
  printf "%-44s %6.3f   %6.3f\n", "ratio to T* (last leecher)", rr, sr
  printf "%-44s %6.3f   %6.3f\n", "ratio to T*, download time only", inner / tstar, sr
  printf "%-44s %6.2f   %6.3f (%s written first)\n", "seeder copies", rc, sc, first
  printf "calibrate N=%d swarm=%.3f simulate=%.3f differ=%.1f%% agree=%s\n", n, rr, sr, 100 * d, (d <= 0.15) ? "yes" : "no"
}'
