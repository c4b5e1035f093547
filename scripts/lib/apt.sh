# Shared by the install scripts (source it after defining log()): non-interactive apt that waits for the
# dpkg lock, and root through sudo where the caller is not root.

export DEBIAN_FRONTEND=noninteractive

# Wait (rather than fail) when another apt/dpkg process holds the lock.
APT_OPTS=(-o DPkg::Lock::Timeout=900 -q)

# Stops with the hint when there is no apt-get; sets SUDO to "" as root and to "sudo -E" otherwise.
need_apt_as_root() {
  local hint=$1
  if ! command -v apt-get >/dev/null 2>&1; then
    log "apt-get not found: $hint"
    exit 1
  fi
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -E"; else
      log "must run as root (or with sudo available)"; exit 1
    fi
  fi
}
