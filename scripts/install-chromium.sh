#!/usr/bin/env bash
# Installs Debian's Chromium for the browser inspector's test (test/web-browser.test.ts drives it
# headless through playwright-core; no browser is downloaded). Its built-in SwiftShader gives WebGPU on
# machines without a GPU. Idempotent and non-interactive; must run as root (or via sudo when available).
# Skips quickly when /usr/bin/chromium runs.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

log() { echo "[install-chromium] $*" >&2; }

# shellcheck source=lib/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"

if [[ -x "$CHROMIUM" ]] && "$CHROMIUM" --version >/dev/null 2>&1; then
  log "already installed ($("$CHROMIUM" --version 2>/dev/null)); nothing to do"
  exit 0
fi

need_apt_as_root "install Chromium at $CHROMIUM by hand"

install() {
  $SUDO apt-get "${APT_OPTS[@]}" install -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold chromium
}

# The package lists of a fresh machine may be missing or stale: update once when the first try fails.
if ! install; then
  log "apt-get update"
  $SUDO apt-get "${APT_OPTS[@]}" update
  install
fi

if "$CHROMIUM" --version >/dev/null 2>&1; then
  log "installed $("$CHROMIUM" --version 2>/dev/null)"
else
  log "error: $CHROMIUM does not run after the install"
  exit 1
fi
