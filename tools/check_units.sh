#!/usr/bin/env bash
# Checks the systemd units in tools/ with systemd-analyze: `verify` must
# print nothing, and `security` gives each unit's exposure score. The
# units name /usr/local/bin; copies pointed at $BIN (the binaries just
# built) are checked, so nothing needs installing first.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib.sh
BIN=$(realpath "$BIN")
if ! command -v systemd-analyze >/dev/null; then
  echo "check-units: systemd-analyze not found (apt-get install systemd); skipped" >&2
  exit 0
fi
work_dir units
tmp=$WORK
sed "s#/usr/local/bin/#$BIN/#" tools/p2pshare-tracker.service > "$tmp/p2pshare-tracker.service"
# A template is checked as one of its instances.
sed "s#/usr/local/bin/#$BIN/#" tools/p2pshare-peer@.service > "$tmp/p2pshare-peer@A.service"
units=("$tmp/p2pshare-tracker.service" "$tmp/p2pshare-peer@A.service")
out=$(systemd-analyze verify "${units[@]}" 2>&1) || { echo "$out" >&2; exit 1; }
if [ -n "$out" ]; then
  echo "$out" >&2
  echo "error: systemd-analyze verify complained about the units above" >&2
  exit 1
fi
echo "systemd-analyze verify: both units clean"
systemd-analyze security --offline=yes "${units[@]}" 2>/dev/null | grep 'Overall exposure' || true
