#!/usr/bin/env bash
# Installs a Vulkan-on-CPU driver (Mesa lavapipe) good enough for Dawn/Deno WebGPU.
#
# Debian bookworm's own Mesa 22 lavapipe is rejected by Dawn
# ("shaderUniform*ArrayDynamicIndexing required"); Mesa >= 24 from
# bookworm-backports works. Idempotent and non-interactive; must run as root
# (or via sudo when available). Skips quickly when a suitable lavapipe exists.
set -euo pipefail

MIN_MESA_MAJOR=24

log() { echo "[install-gpu-driver] $*" >&2; }

# shellcheck source=lib/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"

mesa_major() {
  # Prints the major version of the installed mesa-vulkan-drivers (empty if none).
  local v
  v=$(dpkg-query -W -f='${db:Status-Status} ${Version}\n' mesa-vulkan-drivers 2>/dev/null || true)
  case "$v" in
    installed\ *) v=${v#installed }; v=${v#*:}; echo "${v%%.*}" ;;
    *) echo "" ;;
  esac
}

lavapipe_icd_present() {
  ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1
}

libvulkan_present() {
  dpkg-query -W -f='${db:Status-Status}\n' libvulkan1 2>/dev/null | grep -qx installed
}

have_suitable() {
  local m
  m=$(mesa_major)
  [[ -n "$m" && "$m" -ge $MIN_MESA_MAJOR ]] && lavapipe_icd_present && libvulkan_present
}

if have_suitable; then
  log "lavapipe already installed (mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)); nothing to do"
  exit 0
fi

need_apt_as_root "install Mesa >= ${MIN_MESA_MAJOR} lavapipe (mesa-vulkan-drivers) and libvulkan1 by hand"

codename=""
if [[ -r /etc/os-release ]]; then
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
fi
if [[ "$codename" != "bookworm" ]]; then
  log "warning: this script targets Debian bookworm (found '${codename:-unknown}'); trying the distro's own mesa-vulkan-drivers"
  $SUDO apt-get "${APT_OPTS[@]}" update
  $SUDO apt-get "${APT_OPTS[@]}" install -y --no-install-recommends mesa-vulkan-drivers libvulkan1
else
  # Add bookworm-backports unless some apt source already provides it.
  if ! grep -rqs -E '(^|[[:space:]])bookworm-backports([[:space:]]|$)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    log "adding bookworm-backports apt source"
    if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
      printf '%s\n' \
        'Types: deb' \
        'URIs: http://deb.debian.org/debian' \
        'Suites: bookworm-backports' \
        'Components: main' \
        'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' \
        | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
    else
      echo 'deb http://deb.debian.org/debian bookworm-backports main' \
        | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
    fi
  fi
  log "apt-get update"
  $SUDO apt-get "${APT_OPTS[@]}" update
  log "installing mesa-vulkan-drivers (bookworm-backports) and libvulkan1"
  $SUDO apt-get "${APT_OPTS[@]}" install -y --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    -t bookworm-backports mesa-vulkan-drivers libvulkan1
fi

if have_suitable; then
  log "installed mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)"
else
  log "error: no suitable lavapipe after install (mesa-vulkan-drivers major='$(mesa_major)', need >= ${MIN_MESA_MAJOR})"
  exit 1
fi
