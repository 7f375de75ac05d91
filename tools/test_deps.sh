#!/usr/bin/env bash
# What `make test` needs besides the Rust toolchain: Debian's chromium and
# chromedriver for the browser test (tests/integration/browser.rs). Installs
# them when missing and run as root; otherwise says the exact command and
# fails. Also, when root: faketime (the clock-skew test,
# tests/integration/trips.rs) and prometheus's promtool (the metrics lint,
# tests/integration/metrics.rs); without them those tests are skipped with a
# message, so they are not required.
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
optional=()
command -v faketime >/dev/null || optional+=(faketime)
command -v promtool >/dev/null || optional+=(prometheus)
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  wanted=("${missing[@]}" "${optional[@]}")
  [ ${#wanted[@]} -eq 0 ] && exit 0
  echo "make test: installing ${wanted[*]} for the tests that use them"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  # A missing optional tool skips its test, it does not fail the run.
  if [ ${#optional[@]} -gt 0 ]; then
    apt-get install -y -qq --no-install-recommends "${optional[@]}" >/dev/null ||
      echo "make test: could not install ${optional[*]}; their tests will be skipped"
  fi
elif [ ${#missing[@]} -gt 0 ]; then
  echo "error: the browser test needs ${missing[*]}; install them with:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
