# p2pshare: the two commands a newcomer types are `make demo` and `make test`.
CARGO ?= cargo
BIN := target/release

.PHONY: all build test lint demo bench clean

all: build

build:
	$(CARGO) build --release --bins --examples

# Unit tests (pure logic) and integration tests (the real binaries on loopback).
test:
	$(CARGO) test --all-targets

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

demo: build
	BIN=$(BIN) tools/demo.sh

# One 256 MiB transfer between two peers, against md5sum and a plain socket copy.
bench: build
	BIN=$(BIN) tools/bench.sh

clean:
	$(CARGO) clean
