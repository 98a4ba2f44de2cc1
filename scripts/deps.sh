#!/usr/bin/env bash
# Installs what `make run` / `make test` / `make bench` need on a fresh Debian machine, and
# nothing when it is already there. Usage: scripts/deps.sh run|test|bench
set -euo pipefail
want=(nft:nftables ip:iproute2 nsenter:util-linux)
# The HTML report test opens report.html in a real headless browser (Debian's chromium).
if [ "${1:-}" = test ]; then
  want+=(chromium:chromium)
fi
missing=()
for pair in "${want[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
  else
    echo "deps: installing ${missing[*]}" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi
command -v cargo >/dev/null || { echo "deps: cargo not found; install Rust from rustup.rs" >&2; exit 1; }
# The AWS emulators the aws backend's tests and the aws/ bench run against (skipped when
# already installed).
if [ "${1:-}" = test ] || [ "${1:-}" = bench ]; then
  "$(dirname "$0")/emulators.sh" install
fi
