#!/usr/bin/env bash
# make simulate: one seeder and N leechers in simulated time (src/sim, run by
# examples/simulate.rs), every upload capped at LIMIT as in `make swarm`;
# every copy is checked against the original. The last line is
#   simulate peers=<n> size=<bytes> secs=<s> tstar=<s> ratio=<r> seeder_copies=<c>
#
#   make simulate N=1000 SIZE=16M LIMIT=1M [RTT=0.1ms] [CHURN=0] [SEED=1]
# (defaults N=8 SIZE=128M LIMIT=10M, as make swarm's)
#
# RTT: between any two peers (0.1ms: about loopback; 20ms, 50us, 1s ...).
# CHURN: the fraction of leechers that leave once, each at a random moment
#   in [0, T*) while still downloading, and come back CHURN_AWAY later
#   (default 5s) resuming with what they had; CHURN_AWAY=never: they stay
#   away and are not waited for.
# Also: SEEDER_LIMIT (the seeder's upload, default LIMIT), LOW_WATER (a
# connection's send queue below which the sender is told it may write more,
# default 256K), TIME_LIMIT (simulated seconds, default 10 x T* or 60),
# TRACE=1 (a line per simulated second: uploads, queues, progress),
# CONTROL=paced (requests, answers and HAVEs take link time like blocks:
# the model before they went unpaced, as the real peer sends them).
# The peers run the real machines (src/sim/peer.rs); see docs/SIMULATOR.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib.sh

N=${N:-8}
SIZE=${SIZE:-128M}
LIMIT=${LIMIT:-10M}
RTT=${RTT:-0.1ms}
CHURN=${CHURN:-0}
CHURN_AWAY=${CHURN_AWAY:-5s}
SEED=${SEED:-1}

whole N
whole SEED
F=$(size_bytes "$SIZE") || exit 2
U=$(size_bytes "$LIMIT") || exit 2
sim="$BIN/examples/simulate"
[ -x "$sim" ] || { echo "error: $sim is missing: run 'make build' (or make simulate, which builds)" >&2; exit 1; }

args=(peers="$N" size="$F" limit="$U" rtt="$RTT" churn="$CHURN" away="$CHURN_AWAY" seed="$SEED")
[ -z "${SEEDER_LIMIT:-}" ] || args+=(seeder_limit="$(size_bytes "$SEEDER_LIMIT")")
[ -z "${LOW_WATER:-}" ] || args+=(low_water="$(size_bytes "$LOW_WATER")")
[ -z "${TIME_LIMIT:-}" ] || args+=(time_limit="$TIME_LIMIT")
[ "${TRACE:-0}" != 1 ] || args+=(trace=1)
[ -z "${CONTROL:-}" ] || args+=(control="$CONTROL")
# A run walks a few hundred MB of peer state at random: huge pages for
# glibc's heap take 15 % off its CPU (N=300), where the kernel has them;
# a per-thread cache of 200 freed chunks a size (not 7) keeps the sets
# and buffers freed by the thousand out of malloc's bins (4 % at N=3000).
export GLIBC_TUNABLES=${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1:glibc.malloc.tcache_count=200}
exec "$sim" "${args[@]}"
