#!/usr/bin/env bash
# Installs Redis (Debian's redis-server) for the queue tests and for running `eval --queue` locally.
#
# The tests start their own redis-server on a free loopback port with a temporary directory, so only the
# binary is needed; BullMQ needs Redis >= 5 (Debian bookworm ships 7.0). Idempotent and non-interactive;
# must run as root (or via sudo when available). Skips quickly when a suitable redis-server exists.
set -euo pipefail

MIN_REDIS_MAJOR=5

log() { echo "[install-redis] $*" >&2; }

# shellcheck source=lib/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"

redis_major() {
  # Prints the major version of the redis-server on PATH (empty if none).
  local v
  v=$(redis-server --version 2>/dev/null | sed -n 's/.* v=\([0-9][0-9]*\)\..*/\1/p' || true)
  echo "$v"
}

have_suitable() {
  local m
  m=$(redis_major)
  [[ -n "$m" && "$m" -ge $MIN_REDIS_MAJOR ]]
}

if have_suitable; then
  log "redis-server already installed ($(redis-server --version | awk '{print $3}')); nothing to do"
  exit 0
fi

need_apt_as_root "install Redis >= ${MIN_REDIS_MAJOR} (redis-server) by hand"

log "apt-get update"
$SUDO apt-get "${APT_OPTS[@]}" update
log "installing redis-server"
$SUDO apt-get "${APT_OPTS[@]}" install -y --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold redis-server

if have_suitable; then
  log "installed $(redis-server --version | awk '{print $3}')"
else
  log "error: no suitable redis-server after install (major='$(redis_major)', need >= ${MIN_REDIS_MAJOR})"
  exit 1
fi
