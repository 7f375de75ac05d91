# p2pshare: the two commands a newcomer types are `make demo` and `make test`.
CARGO ?= cargo
# Where Cargo puts the release binaries: target/release, or wherever
# CARGO_TARGET_DIR or a build.target-dir setting sends them; `cargo metadata`
# knows which. Asked once, and only by the targets that run a binary
# (root's PATH often has no cargo: then CARGO_TARGET_DIR, else target/).
# `make BIN=DIR ...` names the directory outright.
BIN ?= $(eval BIN := $(call find_bin))$(BIN)
find_bin = $(or $(shell $(CARGO) metadata --format-version 1 --no-deps 2>/dev/null | \
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p'),$(CARGO_TARGET_DIR),target)/release

.PHONY: all build examples install install-units check-units test lint demo bench bench-tracker update-bench swarm failover simulate calibrate nearfar hosts many-peers web-loris fuzz flood soak clean

all: build

# Only the two binaries: the examples pull in the dev-dependencies
# (proptest and friends), which would triple a first build.
build:
	$(CARGO) build --release --bins

# The binaries and the examples the benchmarks drive (sockcopy,
# tracker_bench, simulate).
examples: build
	$(CARGO) build --release --examples

# Where `make install` puts things: $(PREFIX)/bin/tracker and peer, the
# README and docs/ in $(PREFIX)/share/doc/p2pshare. DESTDIR for packaging.
PREFIX ?= /usr/local
DESTDIR ?=
UNITDIR ?= /etc/systemd/system
UNITS := tools/p2pshare-tracker.service tools/p2pshare-peer@.service

# `sudo make install` after `make build` (root's PATH often has no cargo,
# so this builds only where it finds one).
install:
	@if command -v $(CARGO) >/dev/null; then $(MAKE) --no-print-directory build; fi
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/doc/p2pshare/docs
	install -m 755 $(BIN)/tracker $(BIN)/peer $(DESTDIR)$(PREFIX)/bin/
	install -m 644 README.md $(DESTDIR)$(PREFIX)/share/doc/p2pshare/
	install -m 644 docs/*.md $(DESTDIR)$(PREFIX)/share/doc/p2pshare/docs/

# The systemd units (tools/*.service), pointed at $(PREFIX)/bin; then
# `systemctl daemon-reload` when systemd runs here.
install-units:
	install -d $(DESTDIR)$(UNITDIR)
	for u in $(UNITS); do \
	  sed 's#/usr/local/#$(PREFIX)/#g' $$u > $(DESTDIR)$(UNITDIR)/$$(basename $$u) && \
	  chmod 644 $(DESTDIR)$(UNITDIR)/$$(basename $$u) || exit 1; \
	done
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

# `systemd-analyze verify` and `security` on the units, run against the
# binaries just built (tests/integration/service.rs does the same in
# `make test`).
check-units: build
	BIN=$(BIN) tools/check_units.sh

# Unit tests (pure logic) and integration tests (the real binaries on loopback).
test:
	@tools/test_deps.sh
	$(CARGO) test --all-targets

# The fuzz targets too (fuzz/, a crate of its own): checked without AFL's
# runtime, so a decoder's change that breaks a target shows here.
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) fmt --check --manifest-path fuzz/Cargo.toml
	$(CARGO) clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings

demo: build
	BIN=$(BIN) tools/demo.sh

# One 256 MiB transfer between two peers, the whole `get` process timed
# (spawn to exit), against md5sum, sha256sum and a socket copy (socat) of
# the same file in the same run; ends with one `bench ... get/md5sum=` line.
#   make bench SIZE=256M RUNS=5   (the defaults); RT=1 (root): every contender
#   under SCHED_FIFO, so the rest of a shared machine's load stays out of it
#   (Then the same transfer open and with --secret-file, turn about, and their
#   ratio: tools/bench_secret.sh.)
bench: examples
	BIN=$(BIN) tools/bench.sh
	BIN=$(BIN) tools/bench_secret.sh

# UDP announces per second the tracker answers on one core, latency, CPU
# per announce and memory, for PEERS simulated peers; then opentracker
# under the same load (installed with apt-get when run as root).
#   make bench-tracker PEERS=100000 SECS=10   (those are the defaults)
#   Then, on stderr, what a second tracker costs (memory, announce traffic);
#   TRACKERS=1 skips it.
bench-tracker: examples
	BIN=$(BIN) tools/bench_tracker.sh

# A fleet update against rsync: the owner and N followers (--follow) of a
# SIZE file move from version 1 to 2 (CHANGE=aligned: 1 % overwritten in
# place in 64 KiB regions; insert: 1 MiB + 1,111 bytes inserted in the
# middle), then N rsync clients make the same update from a daemon on
# loopback (rsync installed with apt-get when run as root). Ends with
# `update N=... secs=... fetched_fraction=... rsync_secs=...`.
#   make update-bench N=8 SIZE=256M CHANGE=aligned   (the defaults; SEED=18 TIMEOUT=300 KEEP=1)
update-bench: build
	BIN=$(BIN) tools/update_bench.sh

# One seeder and N leechers on loopback, every upload capped at LIMIT:
# each leecher's time, the swarm's, the lower bound T* and the ratio.
#   make swarm N=8 SIZE=128M LIMIT=10M   (those are the defaults)
swarm: build
	BIN=$(BIN) tools/swarm.sh

# The swarm with two trackers, the first killed (SIGKILL) KILL_AT s after
# the leechers start and never restarted; then a newcomer naming the dead
# tracker first, and a tracker started empty on its port, timed until it
# lists every holder. Ends with `failover ... ratio=... relearn_secs=...`.
#   make failover N=16 SIZE=32M LIMIT=2M KILL_AT=5   (the defaults)
failover: build
	BIN=$(BIN) tools/failover.sh

# The same swarm in simulated time (src/sim): one seeder, N leechers, every
# upload capped at LIMIT, RTT between peers, CHURN the fraction of leechers
# that leave once and come back; ends with `simulate peers=... ratio=...`.
#   make simulate N=8 SIZE=128M LIMIT=10M RTT=0.1ms CHURN=0 SEED=1   (the defaults, as make swarm's)
simulate: examples
	BIN=$(BIN) tools/simulate.sh

# The simulator against reality in one run: make swarm, then make simulate
# with the same N, SIZE and LIMIT; both ratios to T* and seeder copies, and
# whether the ratios agree within 15 % (docs/SIMULATOR.md).
#   make calibrate N=8 SIZE=128M LIMIT=10M   (the defaults, make swarm's)
calibrate: examples
	BIN=$(BIN) tools/calibrate.sh

# One download from a near holder and a far one (RTT ms through a delay
# proxy), each upload capped at LIMIT: the far holder's share of the blocks
# and the time against the ideal SIZE / (2 x LIMIT). LIMIT=0 leaves both
# uncapped. Last line per run: `nearfar ... far_share=... ratio=...`.
#   make nearfar SIZE=48M LIMIT=8M RTT=50 RUNS=1   (the defaults)
nearfar: examples
	BIN=$(BIN) tools/nearfar.sh

# The same swarm with every peer and the tracker in its own network
# namespace (own IP, veth pairs, upload capped by tc tbf). Needs root:
# `make build && sudo make hosts` (root's PATH often has no cargo, so this
# builds only where it finds one). Refuses before building without root.
# RTT and LOSS add distance and loss to every host's link (no netem here:
# a user-space switch, examples/linkrelay, holds the frames; nftables
# drops; tools/links.sh, docs/ARCHITECTURE.md "Test links"):
#   make hosts N=8 SIZE=128M LIMIT=10M RTT=40ms LOSS=0.1%
#   make hosts RTT=5ms-80ms        leechers spread from 5 to 80 ms, each one's printed
#   make hosts CHECK=links RTT=40ms LOSS=0.1%
#                                  no swarm: ping, one TCP stream, loss counted
hosts:
	@HOSTS=1 tools/swarm.sh --check
	@if command -v $(CARGO) >/dev/null; then \
	  $(CARGO) build --release --bins $(if $(RTT)$(LOSS)$(CHECK),--example linkrelay --example tcpstream); fi
	BIN=$(BIN) HOSTS=1 tools/swarm.sh

# A swarm over SITES sites (network namespaces, root): each site's hosts on
# one switch, each upload capped at LAN; the sites joined by links capped
# at WAN each way (tc tbf). The seeder is in site 1, N leechers spread over
# the sites. Runs the swarm with --site, then without; ends with
# `sites ... wan_copies=... ratio=... blind_wan_copies=...` (docs/PERFORMANCE.md, Sites).
#   make sites SITES=2 N=16 SIZE=64M WAN=4M LAN=40M   (the defaults; RUNS=3 repeats)
sites:
	@tools/sites.sh --check
	@if command -v $(CARGO) >/dev/null; then $(MAKE) --no-print-directory build; fi
	BIN=$(BIN) tools/sites.sh

# PEERS real `peer --serve` processes from 127.0.0.1, all sharing one file:
# passes when another peer's `files` lists every one as a holder, and the
# tracker runs at most 64 threads.   make many-peers PEERS=400
many-peers: build
	BIN=$(BIN) PEERS=$(PEERS) tools/many_peers.sh

# A slow-loris on a peer's web UI from its own address: CONNS connections
# from 127.0.0.1 each send a header byte every second for SECS s while LOADS
# page loads are made; passes with 90 % of them served and at most 200 log
# lines. Last line `web-loris ... served=... log_lines=... result=pass`.
#   make web-loris CONNS=300 SECS=20 LOADS=20   (the defaults)
web-loris: build
	$(CARGO) build --release --example web_loris
	BIN=$(BIN) tools/web_loris.sh

# 2,000 idle, trickling or PING-then-idle connections from 100 loopback
# addresses (127.0.0.2-101) on a seeder's block port and as many on the
# tracker's port, then a newcomer's `whohas` and `get`; the last line says
# `flood ... result=pass` (or FAIL) with the threads and descriptors each
# server peaked at.   make flood FLOOD_ADDRS=100 FLOOD_PER_ADDR=20
FLOOD_ADDRS ?= 100
FLOOD_PER_ADDR ?= 20
flood:
	@ulimit -n $$(ulimit -Hn) 2>/dev/null; \
	FLOOD_ADDRS=$(FLOOD_ADDRS) FLOOD_PER_ADDR=$(FLOOD_PER_ADDR) \
	  $(CARGO) test --test integration hostile::a_flood_of -- --nocapture --test-threads 1 >target/flood.log 2>&1; \
	status=$$?; grep -h '^flood addrs' target/flood.log || tail -40 target/flood.log; \
	if [ $$status -eq 0 ]; then echo "flood: PASS"; else echo "flood: FAIL (log: target/flood.log)"; fi; \
	exit $$status

# A swarm under churn (tools/soak.sh): a seeder, LEECHERS leechers with
# capped uploads, random leechers and the tracker killed with SIGKILL and
# restarted for SOAK_SECS; exits 0 when every copy matches the original's
# MD5 and no `files/` holds anything stray.
#   make soak SOAK_SECS=180 LEECHERS=8 SIZE=32M LIMIT=256K   (the defaults)
soak: build
	BIN=$(BIN) tools/soak.sh

# Every decoder under AFL++ (fuzz/, a crate of its own) for FUZZ_SECS
# seconds each, FUZZ_JOBS at a time; installs cargo-afl when missing and
# run as root. Prints executions and crashes per target; fails on a crash.
#   make fuzz FUZZ_SECS=60 FUZZ_JOBS=2   (the defaults; FUZZ_TARGETS="frame codec" picks some)
fuzz:
	tools/fuzz.sh

clean:
	$(CARGO) clean
